//! The one error type of the public surface.
//!
//! Every fallible call in the library returns [`Error`], whose [`ErrorKind`] says what went
//! wrong in the domain's terms (not found, invalid input, conflict, …) and whether trying
//! again may help. Frontends map kinds in one table each: the CLI to exit codes, the server
//! to HTTP statuses, Python to exceptions. Errors of dependencies never appear in public
//! signatures; they are kept as the `source` of an [`Error`].

use std::fmt;

/// What went wrong, in the domain's terms.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input (a file, a field, a name, a JSON body) is malformed or not allowed.
    InvalidInput,
    /// The resource asked for does not exist.
    NotFound,
    /// The request contradicts what is stored (a duplicate, a different content under one name).
    Conflict,
    /// Credentials are missing or wrong.
    Unauthorized,
    /// The body or file is larger than allowed.
    TooLarge,
    /// A service is unreachable or busy for now; trying again later may succeed.
    Unavailable,
    /// The operation or backend is not implemented (yet) or not enabled in this build.
    Unsupported,
    /// Something failed inside this process or its storage; a bug or a broken environment.
    Internal,
}

impl ErrorKind {
    /// Whether the same call may succeed if made again later.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable)
    }

    /// The stable snake_case name used on the wire (`{"kind": "not_found"}`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }

    /// Parses a wire name back; unknown names become [`ErrorKind::Internal`].
    pub fn from_wire(name: &str) -> ErrorKind {
        match name {
            "invalid_input" => ErrorKind::InvalidInput,
            "not_found" => ErrorKind::NotFound,
            "conflict" => ErrorKind::Conflict,
            "unauthorized" => ErrorKind::Unauthorized,
            "too_large" => ErrorKind::TooLarge,
            "unavailable" => ErrorKind::Unavailable,
            "unsupported" => ErrorKind::Unsupported,
            _ => ErrorKind::Internal,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An error of ubuntu-ci: a kind, a message for people, and where it happened.
pub struct Error {
    kind: ErrorKind,
    message: String,
    operation: Option<&'static str>,
    resource: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message saying what went wrong.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            operation: None,
            resource: None,
            source: None,
        }
    }

    /// [`ErrorKind::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    /// [`ErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, message)
    }

    /// [`ErrorKind::Unauthorized`].
    pub fn unauthorized(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unauthorized, message)
    }

    /// [`ErrorKind::TooLarge`].
    pub fn too_large(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::TooLarge, message)
    }

    /// [`ErrorKind::Unavailable`] (retryable).
    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unavailable, message)
    }

    /// [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }

    /// Names the operation that failed (`"create_ticket"`, `"put_file"`).
    #[must_use]
    pub fn with_operation(mut self, operation: &'static str) -> Error {
        self.operation = Some(operation);
        self
    }

    /// Names the resource concerned (a URI, a container, a file).
    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<String>) -> Error {
        self.resource = Some(resource.into());
        self
    }

    /// Keeps the underlying error.
    #[must_use]
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Error {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without operation or resource.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The operation that failed, if known.
    pub fn operation(&self) -> Option<&'static str> {
        self.operation
    }

    /// The resource concerned, if known.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// Whether the same call may succeed if made again later.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(resource) = &self.resource {
            write!(f, "{resource}: ")?;
        }
        f.write_str(&self.message)?;
        // The whole chain of causes: a transport error says "error sending request", its
        // cause "connection refused". A cause whose text ends what was printed just before
        // it (its parent repeating it) is left out.
        let mut said = self.message.clone();
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(cause) = next {
            let text = cause.to_string();
            if !text.is_empty() && !said.ends_with(&text) {
                write!(f, ": {text}")?;
                said = text;
            }
            next = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(op) = self.operation {
            d.field("operation", &op);
        }
        if let Some(resource) = &self.resource {
            d.field("resource", resource);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                ErrorKind::InvalidInput
            }
            std::io::ErrorKind::AlreadyExists => ErrorKind::Conflict,
            // A local permission error is this machine's set-up, not the caller's
            // credentials: not `Unauthorized` (a wrong token, to a client).
            std::io::ErrorKind::PermissionDenied => ErrorKind::Internal,
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, "I/O error").with_source(err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Error {
        Error::invalid("malformed JSON").with_source(err)
    }
}

/// Adds context to results of the library's own type.
pub trait ResultExt<T> {
    /// Names the resource concerned when the result is an error.
    fn resource(self, resource: impl FnOnce() -> String) -> Result<T>;
    /// Names the operation that failed when the result is an error.
    fn operation(self, operation: &'static str) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn resource(self, resource: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.with_resource(resource()))
    }

    fn operation(self, operation: &'static str) -> Result<T> {
        self.map_err(|e| e.with_operation(operation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_on_the_wire() {
        for kind in [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Unauthorized,
            ErrorKind::TooLarge,
            ErrorKind::Unavailable,
            ErrorKind::Unsupported,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_wire(kind.as_str()), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert!(ErrorKind::Unavailable.is_retryable());
        assert!(!ErrorKind::Conflict.is_retryable());
    }

    #[test]
    fn a_local_permission_error_is_no_wrong_token() {
        let denied = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "EPERM");
        assert_eq!(Error::from(denied).kind(), ErrorKind::Internal);
    }

    #[test]
    fn display_names_resource_and_source() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let err = Error::from(io).with_resource("hello.dsc");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.to_string(), "hello.dsc: I/O error: gone");
    }

    #[test]
    fn display_follows_the_chain_of_causes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = Error::unavailable("request failed").with_source(Outer(refused));
        assert_eq!(
            err.to_string(),
            "request failed: error sending request: connection refused"
        );
        // A cause that repeats its parent's end is said once; one that only appears inside
        // it is still said.
        let repeated = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let err = Error::unavailable("the build timed out").with_source(repeated);
        assert_eq!(err.to_string(), "the build timed out");
        let inside = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let err = Error::unavailable("timed out waiting").with_source(inside);
        assert_eq!(err.to_string(), "timed out waiting: timed out");
    }
}
