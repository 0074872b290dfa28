//! The runner's limits on this machine, measured in the same run: the fastest an HTTP
//! route can answer here (an axum hello-world under the same load generator), and the
//! fastest SQLite can durably take submissions (a bare group-commit insert loop).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Starts the `hello-axum` binary next to this one; its child process and address.
pub fn start_hello_axum() -> anyhow::Result<(std::process::Child, String)> {
    let exe = std::env::current_exe()?.with_file_name("hello-axum");
    let mut child = Command::new(&exe)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "{}: cargo build --release -p motcua-bench --bins",
                exe.display()
            )
        })?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let first = lines.next().context("hello-axum printed nothing")??;
    let addr = first
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim_start_matches("http://")
        .to_owned();
    Ok((child, addr))
}

/// Submissions per second SQLite takes when nothing else is done: per submission, `rows`
/// rows of `row_bytes` each (a dossier, its history entry, its outbox event), committed
/// `group` submissions per transaction (the embedded writer's group commit) in WAL mode
/// with `synchronous=FULL`, for `seconds`.
pub fn sqlite_group_commit(
    rows: usize,
    row_bytes: usize,
    group: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    let dir = std::env::temp_dir().join(format!("motcua-sqlite-limit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let c = rusqlite::Connection::open(dir.join("limit.sqlite"))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")?;
    let body = "x".repeat(row_bytes);
    let (start, mut done) = (Instant::now(), 0usize);
    while start.elapsed() < Duration::from_secs(seconds) {
        let tx = c.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT INTO t (body) VALUES (?1)")?;
            for _ in 0..group * rows {
                st.execute([&body])?;
            }
        }
        tx.commit()?;
        done += group;
    }
    let per_sec = done as f64 / start.elapsed().as_secs_f64();
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(per_sec)
}
