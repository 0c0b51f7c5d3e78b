//! The extraction child: `coffer extract <kind>` (hidden), started by the server with the
//! file on standard input. Before it reads anything it limits itself (address space, CPU
//! time, no file writes, few descriptors). It writes the text to standard output and exits 0, or exits with
//! a code saying why not. It opens nothing itself and never talks to the database.
//!
//! Standard output is moved aside first, so a parser that prints cannot mix its chatter into
//! the text.

use std::io::Write;
use std::process::ExitCode;

use super::Kind;
use super::formats::{self, FormatError};

/// Exit code: the file is not a readable document of its kind.
pub const EXIT_MALFORMED: u8 = 3;
/// Exit code: it unpacks to more than the limits allow.
pub const EXIT_TOO_LARGE: u8 = 4;
/// Exit code: the child could not set itself up.
pub const EXIT_SETUP: u8 = 5;

/// What the child may use, as the server's settings say.
pub struct ChildLimits {
    pub max_chars: usize,
    pub max_bytes: u64,
    /// Address space, in bytes.
    pub memory: u64,
    pub cpu_seconds: u64,
}

/// Runs the child's whole life.
pub fn run(kind: Kind, limits: &ChildLimits) -> ExitCode {
    if limit_self(limits.memory, limits.cpu_seconds).is_err() {
        return ExitCode::from(EXIT_SETUP);
    }
    let Ok(mut output) = take_stdout() else { return ExitCode::from(EXIT_SETUP) };
    let (max_chars, max_bytes) = (limits.max_chars, limits.max_bytes);
    let extracted = formats::read_capped(std::io::stdin().lock(), max_bytes).and_then(|bytes| match kind {
        Kind::Pdf => formats::pdf(&bytes, max_chars),
        Kind::Docx => formats::office(bytes, "word/document.xml", max_chars),
        Kind::Odt => formats::office(bytes, "content.xml", max_chars),
        Kind::Html => Ok(formats::html(&bytes, max_chars)),
        Kind::Text => formats::plain_text(&bytes, max_chars).ok_or(FormatError::Malformed("binary".into())),
    });
    match extracted {
        Ok(text) => match output.write_all(text.as_bytes()).and_then(|()| output.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(EXIT_SETUP),
        },
        Err(FormatError::TooLarge) => ExitCode::from(EXIT_TOO_LARGE),
        Err(FormatError::Malformed(reason)) => {
            eprintln!("coffer extract: {reason}");
            ExitCode::from(EXIT_MALFORMED)
        }
    }
}

/// A private copy of standard output for the result; descriptor 1 then points at standard
/// error, where stray prints of the parsers go.
fn take_stdout() -> std::io::Result<std::fs::File> {
    let copy = rustix::io::dup(rustix::stdio::stdout())?;
    rustix::stdio::dup2_stdout(rustix::stdio::stderr())?;
    Ok(std::fs::File::from(copy))
}

/// Limits this process before it touches the input. Uses prlimit64, which the service's
/// system call filter allows (it refuses `setrlimit`).
fn limit_self(memory: u64, cpu_seconds: u64) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let limit = |value: u64| Rlimit { current: Some(value), maximum: Some(value) };
    setrlimit(Resource::As, limit(memory))?;
    setrlimit(Resource::Cpu, Rlimit { current: Some(cpu_seconds), maximum: Some(cpu_seconds + 1) })?;
    setrlimit(Resource::Fsize, limit(0))?;
    setrlimit(Resource::Core, limit(0))?;
    setrlimit(Resource::Nofile, limit(16))?;
    Ok(())
}
