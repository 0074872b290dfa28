//! The ceiling of an HTTP route here: axum on tokio's multi-thread runtime (as the runner
//! uses them), one `GET /hello` answering a small JSON body. `motcua-bench` drives it with
//! the same load generator and connections as the runner and prints the runner's reads as
//! a fraction of it. Prints `listening on http://ADDR` first, as the runner does.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new().route(
        "/hello",
        get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"hello":"world"}"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
