//! The native module of the `ubuntu_ci` Python package (`ubuntu_ci._native`): thin
//! wrappers over `ubuntu-ci-core`.
//!
//! Each wrapper holds an `Arc` of a core type. Every call that may block runs on this
//! module's Tokio runtime with the GIL released, so other Python threads go on meanwhile;
//! core errors become the exceptions of `ubuntu_ci.errors`. What a call does is core's: no
//! rule of the system lives here (the Python package adds typed views and `aio`).

use std::future::Future;
use std::sync::OnceLock;

use pyo3::prelude::*;

mod errors;
mod lander;
mod store;
mod submit;
mod tickets;

/// The runtime every call runs on: made at the first call, kept for the process. A child
/// forked after that has none of its threads: it is refused there.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<(u32, std::result::Result<tokio::runtime::Runtime, String>)> =
        OnceLock::new();
    let (pid, runtime) = RUNTIME.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("ubuntu-ci")
            .enable_all()
            .build()
            .map_err(|e| e.to_string());
        (std::process::id(), runtime)
    });
    if *pid != std::process::id() {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "ubuntu_ci was used before this process was forked, and its threads are not \
             here: use it in the child only, or start children with multiprocessing's \
             'spawn' method",
        ));
    }
    runtime.as_ref().map_err(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!(
            "ubuntu_ci cannot start its runtime: {e}"
        ))
    })
}

/// Runs `work` to its end on the runtime, the GIL released meanwhile.
fn wait<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: Future<Output = ubuntu_ci_core::Result<T>> + Send,
{
    let runtime = runtime()?;
    py.detach(|| runtime.block_on(work))
        .map_err(|e| errors::to_python(py, &e))
}

/// A core value as the Python value of its JSON (dicts, lists, strings, numbers).
fn to_python<T: serde::Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!("a value could not be written: {e}"))
    })?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// The version of the native module (the crate's).
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(submit::submit, m)?)?;
    m.add_class::<store::DataStore>()?;
    m.add_class::<tickets::TicketSystem>()?;
    m.add_class::<lander::Lander>()?;
    m.add_class::<lander::Request>()?;
    Ok(())
}
