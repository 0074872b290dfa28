//! motcua-local: every motcua function in one process, on the embedded backend.
//!
//! ```text
//! motcua-local [serve] [--port N] [--data-dir DIR] [--backend embedded|aws]
//! motcua-local token --role citizen|officer|leader|admin [--sub S] [--agency CODE]
//!                    [--citizen-id ID] [--ttl SECS] [--data-dir DIR]
//! motcua-local seed --dossiers N [--year Y] [--data-dir DIR]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use motcua_local::{Backend, ServeOptions, TokenOptions};

const USAGE: &str = "usage:
  motcua-local [serve] [--port N] [--data-dir DIR] [--backend embedded|aws]
  motcua-local token --role citizen|officer|leader|admin [--sub S] [--agency CODE] [--citizen-id ID] [--ttl SECS] [--data-dir DIR]
  motcua-local seed --dossiers N [--year Y] [--data-dir DIR]   (a realistic year of dossiers, for the dashboard and the bench)

  --port 0 picks a free port (printed). Data lives in --data-dir (default .motcua).";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("motcua-local: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args.first().map(String::as_str) {
        Some("serve") | Some("token") | Some("seed") => args.remove(0),
        Some("-h") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            return Ok(());
        }
        _ => "serve".to_owned(),
    };
    let mut flags = std::collections::BTreeMap::new();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            anyhow::bail!("unexpected argument '{flag}'\n{USAGE}");
        };
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("--{name} needs a value\n{USAGE}"))?;
        flags.insert(name.to_owned(), value);
    }
    let data_dir = PathBuf::from(flags.remove("data-dir").unwrap_or_else(|| ".motcua".into()));
    match cmd.as_str() {
        "serve" => {
            let port = match flags.remove("port") {
                Some(p) => p
                    .parse::<u16>()
                    .map_err(|_| anyhow::anyhow!("--port must be 0-65535"))?,
                None => 3000,
            };
            let backend = match flags.remove("backend").as_deref() {
                None | Some("embedded") => Backend::Embedded,
                Some("aws") => Backend::Aws,
                Some(other) => anyhow::bail!("--backend must be embedded or aws, not '{other}'"),
            };
            reject_unknown(&flags)?;
            motcua_local::serve(ServeOptions {
                port,
                data_dir,
                backend,
            })
        }
        "seed" => {
            let n: u64 = flags
                .remove("dossiers")
                .ok_or_else(|| anyhow::anyhow!("seed needs --dossiers N\n{USAGE}"))?
                .parse()
                .map_err(|_| anyhow::anyhow!("--dossiers must be a whole number"))?;
            anyhow::ensure!((1..=5_000_000).contains(&n), "--dossiers is 1 to 5,000,000");
            let year: i16 = match flags.remove("year") {
                Some(y) => y
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--year must be a year"))?,
                None => jiff::Zoned::now().year(),
            };
            anyhow::ensure!((2000..=2100).contains(&year), "--year is 2000 to 2100");
            reject_unknown(&flags)?;
            let started = std::time::Instant::now();
            let done = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(motcua_local::seed::seed(&data_dir, n, year))?;
            println!(
                "seeded {} dossiers of {year} in {} ({} online, {} still open) in {:.1} s",
                done.dossiers,
                data_dir.display(),
                done.online,
                done.open,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        _ => {
            let role = flags
                .remove("role")
                .ok_or_else(|| anyhow::anyhow!("token needs --role\n{USAGE}"))?;
            let opts = TokenOptions {
                role,
                sub: flags.remove("sub"),
                agency: flags.remove("agency"),
                citizen_id: flags.remove("citizen-id"),
                ttl_secs: match flags.remove("ttl") {
                    Some(t) => t
                        .parse()
                        .map_err(|_| anyhow::anyhow!("--ttl must be seconds"))?,
                    None => 8 * 3600,
                },
                data_dir,
            };
            reject_unknown(&flags)?;
            println!("{}", motcua_local::token(&opts)?);
            Ok(())
        }
    }
}

fn reject_unknown(flags: &std::collections::BTreeMap<String, String>) -> anyhow::Result<()> {
    if let Some(name) = flags.keys().next() {
        anyhow::bail!("unknown option --{name}\n{USAGE}");
    }
    Ok(())
}
