//! `Lander` and `Request`: a ticket's request run through every step by this machine's
//! lander, its progress messages iterated as dicts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::{ExecuteRequest, RequestHandle, RequestOutcome, SubmitOptions};
use ubuntu_ci_core::model::Ticket;
use ubuntu_ci_core::queue::{is_final, MessageStream, QueueName};
use ubuntu_ci_core::Error;

use crate::tickets::uri;
use crate::{runtime, to_python, wait};

/// How often a wait for the next message looks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);

/// This machine's lander, on the configured services with the real workers (sbuild, the
/// image builder, autopkgtest), as `ubuntu-ci create-ticket --wait` runs it; `series`
/// defaults to the configured one. Its requests run in the background of the process.
#[pyclass(module = "ubuntu_ci._native", frozen)]
pub(crate) struct Lander {
    inner: Arc<ubuntu_ci_core::lander::Lander>,
}

#[pymethods]
impl Lander {
    #[new]
    #[pyo3(signature = (series = None))]
    fn new(py: Python<'_>, series: Option<String>) -> PyResult<Lander> {
        let inner = wait(py, async move {
            let config = Config::load(None)?.with_env();
            let services = config.connect(None).await?;
            let Some(archives) = services.archives.local().cloned() else {
                return Err(Error::unsupported(
                    "with a server configured, its lander runs the requests: create the \
                     ticket there and follow it (ubuntu-ci create-ticket --wait)",
                ));
            };
            let series = archives.series(series.as_deref())?;
            let options = config.lander_options(&series)?;
            Ok(ubuntu_ci_core::lander::Lander::new(services, options))
        })?;
        Ok(Lander {
            inner: Arc::new(inner),
        })
    }

    /// Runs the ticket's uploads (its `SPU` artifacts) through every step; the request,
    /// under way. `binary_packages` defaults to every binary the uploads build,
    /// `base_image` to the series' (made once, then reused).
    #[pyo3(signature = (ticket, *, series = None, base_image = None, binary_packages = None))]
    fn submit(
        &self,
        py: Python<'_>,
        ticket: &Bound<'_, PyAny>,
        series: Option<String>,
        base_image: Option<String>,
        binary_packages: Option<Vec<String>>,
    ) -> PyResult<Request> {
        let id = uri::<Ticket>(ticket)?.id();
        let lander = Arc::clone(&self.inner);
        let options = SubmitOptions {
            series,
            base_image,
            binary_packages: binary_packages.unwrap_or_default(),
        };
        let (handle, messages) = wait(py, async move {
            let detail = lander.services().tickets.get_ticket(id).await?;
            let queue = QueueName::fresh(&format!("ticket-{id}"))?;
            let execute = ExecuteRequest::for_ticket_with(&detail, &queue, options)?;
            start(&lander, execute, &queue).await
        })?;
        Request::new(handle, messages)
    }

    /// Runs the seed's `execute_request` message (a dict: `ticket_id`, `source_packages`,
    /// `binary_packages`, `series`, `base_image`, `progress_queue`); the request, under way.
    fn execute(&self, py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<Request> {
        let text: String = py
            .import("json")?
            .call_method1("dumps", (request,))?
            .extract()?;
        let execute: ExecuteRequest = serde_json::from_str(&text).map_err(|e| {
            crate::errors::to_python(
                py,
                &Error::invalid(format!("not an execute_request message: {e}")),
            )
        })?;
        let lander = Arc::clone(&self.inner);
        let (handle, messages) = wait(py, async move {
            let queue = QueueName::new(execute.progress_queue.clone())?;
            start(&lander, execute, &queue).await
        })?;
        Request::new(handle, messages)
    }
}

/// Subscribes to the request's queue, then submits it: no message is missed.
async fn start(
    lander: &ubuntu_ci_core::lander::Lander,
    execute: ExecuteRequest,
    queue: &QueueName,
) -> ubuntu_ci_core::Result<(RequestHandle, MessageStream)> {
    let messages = lander.services().queues.subscribe(queue, None).await?;
    let handle = lander.submit(execute).await?;
    Ok((handle, messages))
}

/// A request under way. Iterating it gives its progress messages as dicts, in the seed's
/// format (`{"phase": …, "message": …}`, log batches, the test runner's `current`/`total`,
/// heartbeats), ending with its final one (`{"state": "COMPLETED", …}` or `"FAILED"`).
/// `outcome()` waits for its end and gives the lander's result; `cancel()` stops it.
#[pyclass(module = "ubuntu_ci._native")]
pub(crate) struct Request {
    ticket_id: i64,
    cancel: tokio_util::sync::CancellationToken,
    /// The run, until its outcome is taken.
    running: Mutex<Option<Running>>,
    messages: Mutex<Option<MessageStream>>,
    outcome: Mutex<Option<RequestOutcome>>,
}

type Running = tokio::task::JoinHandle<ubuntu_ci_core::Result<RequestOutcome>>;

impl Request {
    fn new(handle: RequestHandle, messages: MessageStream) -> PyResult<Request> {
        let ticket_id = handle.ticket_id();
        let cancel = handle.cancellation();
        let running = runtime()?.spawn(handle.outcome());
        Ok(Request {
            ticket_id,
            cancel,
            running: Mutex::new(Some(running)),
            messages: Mutex::new(Some(messages)),
            outcome: Mutex::new(None),
        })
    }
}

/// Takes `mutex` without waiting: a thread that waited here holding the GIL could keep
/// the one inside from ever taking it back.
fn take<'a, T>(mutex: &'a Mutex<T>, what: &str) -> PyResult<std::sync::MutexGuard<'a, T>> {
    mutex.try_lock().map_err(|e| match e {
        std::sync::TryLockError::WouldBlock => pyo3::exceptions::PyRuntimeError::new_err(format!(
            "another thread is {what} this request"
        )),
        std::sync::TryLockError::Poisoned(_) => pyo3::exceptions::PyRuntimeError::new_err(
            "a request was used by a thread that panicked",
        ),
    })
}

#[pymethods]
impl Request {
    /// The ticket's id.
    #[getter]
    fn ticket_id(&self) -> i64 {
        self.ticket_id
    }

    /// Asks the request to stop: its running work is ended, its PPA released, the ticket
    /// marked CANCELLED.
    fn cancel(&self) {
        self.cancel.cancel();
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut guard = take(&self.messages, "iterating")?;
        let Some(messages) = guard.as_mut() else {
            return Err(PyStopIteration::new_err(()));
        };
        let runtime = runtime()?;
        loop {
            let next = py.detach(|| {
                runtime
                    .block_on(async { tokio::time::timeout(SIGNAL_CHECK, messages.next()).await })
            });
            match next {
                // Still waiting: Ctrl-C ends the wait (the request goes on).
                Err(_) => py.check_signals()?,
                Ok(None) => {
                    *guard = None;
                    return Err(PyStopIteration::new_err(()));
                }
                Ok(Some(Err(err))) => {
                    *guard = None;
                    return Err(crate::errors::to_python(py, &err));
                }
                Ok(Some(Ok(message))) => {
                    if is_final(&message.body) {
                        *guard = None;
                    }
                    return to_python(py, &message.body);
                }
            }
        }
    }

    /// Waits for the request's end: the lander's result (`state`, `step`, `reason`, `ppa`,
    /// `builds`, `image`, `tests`, `published`, …) as a dict.
    fn outcome(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut kept = take(&self.outcome, "waiting for")?;
        if let Some(outcome) = kept.as_ref() {
            return to_python(py, outcome);
        }
        let mut guard = take(&self.running, "waiting for")?;
        let Some(running) = guard.as_mut() else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the request's run is gone",
            ));
        };
        let runtime = runtime()?;
        // Interrupted (Ctrl-C), the wait can be taken up again: the run is kept.
        let ended = loop {
            let next = py.detach(|| {
                runtime.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut *running).await })
            });
            match next {
                Err(_) => py.check_signals()?,
                Ok(ended) => break ended,
            }
        };
        *guard = None;
        let outcome = ended
            .map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!("the request stopped: {e}"))
            })?
            .map_err(|e| crate::errors::to_python(py, &e))?;
        let value = to_python(py, &outcome);
        *kept = Some(outcome);
        value
    }

    fn __repr__(&self) -> String {
        format!("Request(ticket_id={})", self.ticket_id)
    }
}
