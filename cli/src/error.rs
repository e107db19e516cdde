//! The one error of every command, and the one way a command runs async work.

use std::future::Future;

use vproto_services::guest_agent::AgentError;

/// Why a command failed: what `main` prints (as `vproto COMMAND: message`) and the exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage, options, config or input: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The command could not do its work (a server's error answer, an unreachable peer, a
    /// socket already in use): exit 1.
    #[error("{0}")]
    Failed(String),
    /// The command ran and reported the failure itself (conformance cases that failed, in the
    /// report): exit 1 and nothing more to print.
    #[error("the command failed")]
    Reported,
    /// The Xen guest agent's error, with its own exit status (2 for its config, 1 otherwise).
    #[error(transparent)]
    Agent(#[from] AgentError),
}

impl CliError {
    /// A [`CliError::Usage`].
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    /// A [`CliError::Failed`].
    pub fn failed(message: impl Into<String>) -> Self {
        CliError::Failed(message.into())
    }

    /// The process's exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) | CliError::Reported => 1,
            CliError::Agent(error) => error.exit_code(),
        }
    }
}

/// Runs a command's async work to completion on a multi-threaded tokio runtime (timers and I/O
/// enabled). Every command but `vproto agent` runs its async work through this; the guest
/// agent keeps the one-thread runtime of `vproto_services::guest_agent::run_until_signalled`,
/// which it shares with `vproto-guest-agent`.
pub fn block_on<T>(work: impl Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(work)
}
