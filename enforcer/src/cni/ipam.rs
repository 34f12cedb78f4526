//! Delegating address management to the IPAM plugin the configuration names: found in
//! `CNI_PATH`, run with our environment and configuration, its answer parsed.

use super::config::{Command, Env, NetConf};
use super::result::{CniError, CniResult, ErrorCode};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

/// The executable `name` in the first directory of `CNI_PATH` that has it.
pub fn find(env: &Env, name: &str) -> Result<PathBuf, CniError> {
    env.path
        .iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let dirs: Vec<String> = env.path.iter().map(|p| p.display().to_string()).collect();
            CniError::new(
                ErrorCode::InvalidConfig,
                format!("IPAM plugin `{name}` not found"),
                format!("no `{name}` in CNI_PATH ({})", dirs.join(":")),
            )
        })
}

/// Runs the IPAM plugin for `command`; ADD returns its result, DEL and CHECK nothing.
pub fn exec(env: &Env, conf: &NetConf, command: Command) -> Result<Option<CniResult>, CniError> {
    let plugin = find(env, &conf.ipam_type)?;
    let verb = match command {
        Command::Add => "ADD",
        Command::Del => "DEL",
        Command::Check => "CHECK",
        Command::Version => "VERSION",
    };
    let io = |what: &str, e: std::io::Error| {
        CniError::new(
            ErrorCode::Io,
            format!("running IPAM plugin `{}`: {what}", conf.ipam_type),
            e.to_string(),
        )
    };
    let mut child = std::process::Command::new(&plugin)
        .env("CNI_COMMAND", verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io("cannot start it", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&conf.raw)
            .map_err(|e| io("cannot write its configuration", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| io("waiting for it", e))?;
    if !out.status.success() {
        return Err(plugin_error(&conf.ipam_type, &out.stdout, &out.stderr));
    }
    if command != Command::Add {
        return Ok(None);
    }
    let result: CniResult = serde_json::from_slice(&out.stdout).map_err(|e| {
        CniError::new(
            ErrorCode::Decode,
            format!(
                "cannot decode the result of IPAM plugin `{}`",
                conf.ipam_type
            ),
            format!("{e}: {}", String::from_utf8_lossy(&out.stdout)),
        )
    })?;
    if result.ips.is_empty() {
        return Err(CniError::new(
            ErrorCode::Ipam,
            format!("IPAM plugin `{}` returned no address", conf.ipam_type),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
    }
    Ok(Some(result))
}

/// The IPAM plugin's own error passed through (its code, its message under its name), or a
/// generic one when it printed none.
fn plugin_error(name: &str, stdout: &[u8], stderr: &[u8]) -> CniError {
    #[derive(serde::Deserialize)]
    struct Raw {
        code: u32,
        msg: String,
        #[serde(default)]
        details: String,
    }
    match serde_json::from_slice::<Raw>(stdout) {
        Ok(raw) => CniError::new(
            ErrorCode::from_code(raw.code),
            format!("IPAM plugin `{name}`: {}", raw.msg),
            raw.details,
        ),
        Err(_) => CniError::new(
            ErrorCode::Ipam,
            format!("IPAM plugin `{name}` failed"),
            format!(
                "{}{}",
                String::from_utf8_lossy(stdout),
                String::from_utf8_lossy(stderr)
            ),
        ),
    }
}
