//! ClamAV's clamd for the tests that need a real scan: started by the project's script
//! (`infra/clamav/start.sh`: Debian's package, the project's test signatures) unless one
//! already answers on the port.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The address of a running clamd, starting it (once per test process) if needed.
pub fn ensure_running() -> Result<String, String> {
    static STARTED: OnceLock<Result<String, String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let port = std::env::var("MOTCUA_CLAMD_PORT").unwrap_or_else(|_| "3310".into());
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/clamav/start.sh");
            let out = Command::new("bash")
                .arg(&script)
                .env("MOTCUA_CLAMD_PORT", &port)
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "{} failed: {}{}",
                    script.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(format!("127.0.0.1:{port}"))
        })
        .clone()
}
