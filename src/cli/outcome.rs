//! What a finished command tells `main`, which alone turns it into the exit code (as in ripgrep):
//! 0 success, 1 a negative answer, 2 a usage or I/O error (any other error).
//!
//! A negative answer is not a failure to run: the command did its job and the answer is "no" (the
//! configs do not compile, the flavors differ, the server is not healthy, the drain had to cut
//! requests). Commands say so with [`Outcome::Negative`] when what they printed is the answer, or
//! with a [`NegativeAnswer`] error when the answer is a one-line message for stderr.

/// How a command that ran to the end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the command printed (or logged) why.
    Negative,
}

/// An error that is a negative answer (exit 1), not a usage or I/O error (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NegativeAnswer(pub String);
