//! `Lander` and `Request`: a ticket's request run through every step, by this machine's
//! lander or by a server's, its progress messages iterated as dicts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::remote::HttpLanders;
use ubuntu_ci_core::lander::{ExecuteRequest, RequestHandle, RequestOutcome, SubmitOptions};
use ubuntu_ci_core::model::{Ticket, TicketState};
use ubuntu_ci_core::queue::{is_final, MessageStream, ProgressMessage, QueueMessage, QueueName};
use ubuntu_ci_core::tickets::{open_ticket_system, TicketSystem, TicketSystemOptions};
use ubuntu_ci_core::Error;

use crate::tickets::uri;
use crate::{runtime, to_python, wait};

/// How often a wait for the next message looks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);

/// How often a server is asked whether its request ended.
const STATUS_POLL: Duration = Duration::from_millis(500);

/// A lander: this machine's, on the configured services with the real workers (sbuild,
/// the image builder, autopkgtest), as `ubuntu-ci create-ticket --wait` runs it; or a
/// server's (`url` and `token`, or the configured server), which runs the tickets handed
/// to it. `series` defaults to the configured one (the server's, on a server). This
/// machine's requests run in the background of the process.
#[pyclass(module = "ubuntu_ci._native", frozen)]
pub(crate) struct Lander {
    inner: Arc<Landers>,
}

enum Landers {
    Here(Box<ubuntu_ci_core::lander::Lander>),
    Server(Arc<Server>),
}

/// A server's landers, and its tickets (their events are a request's progress there).
struct Server {
    landers: HttpLanders,
    tickets: Arc<dyn TicketSystem>,
    series: Option<String>,
}

#[pymethods]
impl Lander {
    #[new]
    #[pyo3(signature = (series = None, *, url = None, token = None))]
    fn new(
        py: Python<'_>,
        series: Option<String>,
        url: Option<String>,
        token: Option<String>,
    ) -> PyResult<Lander> {
        let inner = wait(py, async move {
            let config = Config::load(None)?.with_env();
            let server = match url {
                Some(url) => Some((url, token)),
                None => config
                    .server
                    .clone()
                    .map(|server| (server, token.or_else(|| config.token.clone()))),
            };
            if let Some((url, token)) = server {
                let landers = HttpLanders::new(&url, token.clone())?;
                let tickets = open_ticket_system(&url, &TicketSystemOptions { token }).await?;
                return Ok(Landers::Server(Arc::new(Server {
                    landers,
                    tickets,
                    series,
                })));
            }
            let services = config.connect(None).await?;
            let Some(archives) = services.archives.local().cloned() else {
                return Err(Error::internal("the local services have no archives"));
            };
            let series = archives.series(series.as_deref())?;
            let options = config.lander_options(&series)?;
            Ok(Landers::Here(Box::new(
                ubuntu_ci_core::lander::Lander::new(services, options),
            )))
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
        let options = SubmitOptions {
            series,
            base_image,
            binary_packages: binary_packages.unwrap_or_default(),
        };
        match &*self.inner {
            Landers::Here(_) => {
                let inner = Arc::clone(&self.inner);
                let (handle, messages) = wait(py, async move {
                    let Landers::Here(lander) = &*inner else {
                        return Err(Error::internal("not this machine's lander"));
                    };
                    let detail = lander.services().tickets.get_ticket(id).await?;
                    let queue = QueueName::fresh(&format!("ticket-{id}"))?;
                    let execute = ExecuteRequest::for_ticket_with(&detail, &queue, options)?;
                    start(lander, execute, &queue).await
                })?;
                Request::here(handle, messages)
            }
            Landers::Server(server) => {
                let submitting = Arc::clone(server);
                wait(py, async move {
                    let options = SubmitOptions {
                        series: options.series.or_else(|| submitting.series.clone()),
                        ..options
                    };
                    submitting.landers.submit(id, &options).await.map(|_| ())
                })?;
                Request::on_server(Arc::clone(server), id)
            }
        }
    }

    /// Runs the seed's `execute_request` message (a dict: `ticket_id`, `source_packages`,
    /// `binary_packages`, `series`, `base_image`, `progress_queue`); the request, under way.
    /// This machine's lander only: a server's takes tickets (`submit`).
    fn execute(&self, py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<Request> {
        if let Landers::Server(_) = &*self.inner {
            return Err(crate::errors::to_python(
                py,
                &Error::unsupported(
                    "a server's lander takes tickets (submit), not execute_request messages",
                ),
            ));
        }
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
        let inner = Arc::clone(&self.inner);
        let (handle, messages) = wait(py, async move {
            let Landers::Here(lander) = &*inner else {
                return Err(Error::internal("not this machine's lander"));
            };
            let queue = QueueName::new(execute.progress_queue.clone())?;
            start(lander, execute, &queue).await
        })?;
        Request::here(handle, messages)
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
/// On a server, the messages are the ticket's events (`{"phase", "status", "message"}`, from
/// its creation on), then the same final one. `outcome()` waits for its end and gives the
/// lander's result; `cancel()` stops it.
#[pyclass(module = "ubuntu_ci._native")]
pub(crate) struct Request {
    ticket_id: i64,
    stop: Stop,
    /// The run, until its outcome is taken.
    running: Mutex<Option<Running>>,
    messages: Mutex<Option<MessageStream>>,
    outcome: Mutex<Option<RequestOutcome>>,
}

/// How a request is stopped.
enum Stop {
    Here(tokio_util::sync::CancellationToken),
    Server(Arc<Server>),
}

type Running = tokio::task::JoinHandle<ubuntu_ci_core::Result<RequestOutcome>>;

impl Request {
    fn here(handle: RequestHandle, messages: MessageStream) -> PyResult<Request> {
        let ticket_id = handle.ticket_id();
        let cancel = handle.cancellation();
        let running = runtime()?.spawn(handle.outcome());
        Ok(Request {
            ticket_id,
            stop: Stop::Here(cancel),
            running: Mutex::new(Some(running)),
            messages: Mutex::new(Some(messages)),
            outcome: Mutex::new(None),
        })
    }

    fn on_server(server: Arc<Server>, ticket: i64) -> PyResult<Request> {
        let runtime = runtime()?;
        let running = runtime.spawn(finished_on(Arc::clone(&server), ticket));
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        runtime.spawn(relay_events(Arc::clone(&server), ticket, sender));
        let messages: MessageStream =
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver));
        Ok(Request {
            ticket_id: ticket,
            stop: Stop::Server(server),
            running: Mutex::new(Some(running)),
            messages: Mutex::new(Some(messages)),
            outcome: Mutex::new(None),
        })
    }
}

/// The server's request once it finished (asked every [`STATUS_POLL`]).
async fn finished_on(server: Arc<Server>, ticket: i64) -> ubuntu_ci_core::Result<RequestOutcome> {
    loop {
        match server.landers.status(ticket).await? {
            Some(status) if status.finished => return Ok(status.progress),
            Some(_) => tokio::time::sleep(STATUS_POLL).await,
            None => {
                return Err(Error::not_found(format!(
                    "the server has no request for ticket {ticket}"
                )))
            }
        }
    }
}

/// Passes the ticket's events on as messages until the ticket closes, then the request's
/// final message; stops when nobody reads them any more.
async fn relay_events(
    server: Arc<Server>,
    ticket: i64,
    messages: tokio::sync::mpsc::Sender<ubuntu_ci_core::Result<QueueMessage>>,
) {
    let relayed = async {
        let mut seq = 0u64;
        let mut after = None;
        // A stream ends when the ticket closes; what came after is read on until a stream
        // brings nothing new and the ticket is closed.
        loop {
            let mut events = server.tickets.events(ticket, after).await?;
            let mut new = false;
            while let Some(event) = events.next().await {
                let event = event?;
                new = true;
                after = Some(event.id);
                seq += 1;
                let body = serde_json::json!({
                    "phase": event.step.as_str(),
                    "status": event.status.as_str(),
                    "message": event.message,
                });
                if messages.send(Ok(QueueMessage { seq, body })).await.is_err() {
                    return Ok(());
                }
            }
            let now = server.tickets.get_ticket(ticket).await?.ticket;
            if now.state == TicketState::Closed && !new {
                break;
            }
        }
        let outcome = finished_on(Arc::clone(&server), ticket).await?;
        let body = ProgressMessage::Done(outcome.to_done()).to_json();
        let _ = messages.send(Ok(QueueMessage { seq: seq + 1, body })).await;
        Ok::<(), Error>(())
    };
    if let Err(err) = relayed.await {
        let _ = messages.send(Err(err)).await;
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
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        match &self.stop {
            Stop::Here(cancel) => {
                cancel.cancel();
                Ok(())
            }
            Stop::Server(server) => {
                let (server, ticket) = (Arc::clone(server), self.ticket_id);
                wait(py, async move { server.landers.cancel(ticket).await })
            }
        }
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
