//! How a binary ends: a clean exit, or the whole error chain in one log line and a failing exit code.

use std::process::ExitCode;

pub fn report(binary: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "{binary} stopped");
            ExitCode::FAILURE
        }
    }
}
