//! Exit codes: which errors are "the log failed a check" (1) and which are "the command could
//! not do its job" (2).

use std::process::ExitCode;

/// Exit code for a verification failure, damage, or an error answer from the server.
pub const FAILURE: u8 = 1;
/// Exit code for a usage or environment problem.
pub const USAGE: u8 = 2;

/// An outcome that says something about the log (or the server's answer), as opposed to a
/// problem running the command. Raised through `anyhow`; [`code_for`] finds it under any
/// context added on the way up.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A signature, proof, root or stored file did not check out.
    #[error("verification failed: {0}")]
    Verification(String),
    /// The server answered with an error status.
    #[error("{method} {url}: HTTP {status}: {body}")]
    Http {
        /// Request method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// Status code.
        status: u16,
        /// The answer's body (the server's JSON error), trimmed.
        body: String,
    },
}

impl Failure {
    /// A verification failure with a message.
    pub fn verification(msg: impl Into<String>) -> Self {
        Failure::Verification(msg.into())
    }
}

/// 1 for a [`Failure`] anywhere in the error's chain, 2 for anything else.
pub fn code_for(e: &anyhow::Error) -> ExitCode {
    if e.chain().any(|c| c.downcast_ref::<Failure>().is_some())
        || e.downcast_ref::<Failure>().is_some()
    {
        ExitCode::from(FAILURE)
    } else {
        ExitCode::from(USAGE)
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn failures_under_context_exit_1_and_other_errors_exit_2() {
        let failed: anyhow::Result<()> = Err(Failure::verification("root differs").into());
        let wrapped = failed
            .context("checking the log")
            .context("verify")
            .unwrap_err();
        assert_eq!(code_for(&wrapped), ExitCode::from(FAILURE));

        let io = std::fs::read("/nonexistent/stele/file").context("reading the key");
        assert_eq!(code_for(&io.unwrap_err()), ExitCode::from(USAGE));
    }
}
