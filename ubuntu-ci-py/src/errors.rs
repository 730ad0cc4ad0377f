//! Core errors as the exceptions of `ubuntu_ci.errors`: one class per kind, made by the
//! Python package's `_from_native` so that the hierarchy lives in one place.

use pyo3::prelude::*;

/// The exception for `err`: its class by kind, its message, and where it happened.
pub(crate) fn to_python(py: Python<'_>, err: &ubuntu_ci_core::Error) -> PyErr {
    let made = py.import("ubuntu_ci.errors").and_then(|module| {
        module.getattr("_from_native")?.call1((
            err.kind().as_str(),
            err.to_string(),
            err.message(),
            err.operation(),
            err.resource(),
        ))
    });
    match made {
        Ok(exception) => PyErr::from_value(exception),
        // The package itself is broken: say what failed, with the error meant.
        Err(broken) => pyo3::exceptions::PyRuntimeError::new_err(format!(
            "{err} (ubuntu_ci.errors could not be used: {broken})"
        )),
    }
}
