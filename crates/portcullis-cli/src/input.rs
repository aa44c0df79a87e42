//! Reading inputs: files and standard input, bounded, and secrets given as
//! `@FILE` or `-`.

use std::io::{BufRead, Read};
use std::path::Path;

use crate::report::Failure;

/// The most bytes read from one file or from standard input (the
/// `--requests` stream, read line by line, is not bounded).
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Reads all of `reader`, refusing more than [`MAX_INPUT_BYTES`].
pub(crate) fn read_bounded(reader: impl std::io::Read, what: &str) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::new("io", format!("{what}: {e}")))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(Failure::new(
            "io",
            format!("{what}: larger than {MAX_INPUT_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// A file's bytes, at most [`MAX_INPUT_BYTES`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    let shown = path.display().to_string();
    let file =
        std::fs::File::open(path).map_err(|e| Failure::new("io", format!("{shown}: {e}")))?;
    read_bounded(file, &shown)
}

/// Standard input, which one argument of a command may read.
pub(crate) struct Stdin<'a> {
    pub(crate) reader: &'a mut dyn BufRead,
    pub(crate) taken_by: Option<&'static str>,
}

impl Stdin<'_> {
    /// All of standard input, for the argument `what`; a second argument
    /// asking for it is a usage error.
    pub(crate) fn take(&mut self, what: &'static str) -> Result<Vec<u8>, Failure> {
        if let Some(first) = self.taken_by {
            return Err(Failure::new(
                "usage",
                format!(
                    "{what} and {first} both ask for standard input (`-`); give one of them a file"
                ),
            ));
        }
        self.taken_by = Some(what);
        read_bounded(&mut self.reader, "standard input")
    }

    /// A file's bytes, or standard input's for `-`.
    pub(crate) fn read(&mut self, path: &Path, what: &'static str) -> Result<Vec<u8>, Failure> {
        if path.as_os_str() == "-" {
            return self.take(what);
        }
        read_file(path)
    }

    pub(crate) fn read_text(&mut self, path: &Path, what: &'static str) -> Result<String, Failure> {
        String::from_utf8(self.read(path, what)?)
            .map_err(|_| Failure::new("io", format!("{}: not UTF-8", path.display())))
    }

    /// A secret argument: the value itself, `@FILE` for a file's content,
    /// or `-` for standard input. One line end is trimmed from what is
    /// read (`echo` and editors add one).
    pub(crate) fn secret(&mut self, argument: &str, what: &'static str) -> Result<String, Failure> {
        let bytes = if argument == "-" {
            self.take(what)?
        } else if let Some(path) = argument.strip_prefix('@') {
            read_file(Path::new(path))
                .map_err(|e| Failure::new("io", format!("{what}: {}", e.message)))?
        } else {
            return Ok(argument.to_owned());
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| Failure::new("io", format!("{what}: not UTF-8")))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
    }
}
