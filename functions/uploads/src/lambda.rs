//! The HTTP settings every function reads on Lambda (now in `motcua_http::settings`).

pub use motcua_http::settings::HttpSettings;
