//! `Lander` and `Request`: a ticket's request run through every step, by this machine's
//! lander or by a server's, its progress messages iterated as dicts.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::remote::HttpLanders;
use ubuntu_ci_core::lander::{ExecuteRequest, RequestHandle, RequestOutcome, SubmitOptions};
use ubuntu_ci_core::model::Ticket;
use ubuntu_ci_core::queue::{is_final, MessageStream, ProgressMessage, QueueMessage, QueueName};
use ubuntu_ci_core::tickets::{open_ticket_system, TicketSystem, TicketSystemOptions};
use ubuntu_ci_core::{Error, ErrorKind};

use crate::tickets::uri;
use crate::{runtime, to_python, wait};

/// How often a wait for the next message looks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);
/// How long messages are still read once the run ended: its final one is published before.
const DRAIN: Duration = Duration::from_millis(200);
/// How often a server is asked again after it could not be reached.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// How many times in a row a server may be unreachable before the request says so.
const RETRIES: u32 = 30;

/// How often a server is asked whether its request ended.
const STATUS_POLL: Duration = Duration::from_secs(1);

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
            let lander = config.lander(&services, series.as_deref())?;
            Ok(Landers::Here(Box::new(lander)))
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
    /// Whether the run ended, and how (set once, by the task that waits for it).
    ended: tokio::sync::watch::Receiver<bool>,
    result: Arc<OnceLock<ubuntu_ci_core::Result<RequestOutcome>>>,
    messages: Mutex<Option<MessageStream>>,
    /// The tasks working for this object, ended with it.
    tasks: Vec<tokio::task::AbortHandle>,
}

/// How a request is stopped.
enum Stop {
    Here(tokio_util::sync::CancellationToken),
    Server(Arc<Server>),
}

/// What a wait for the next message gave.
enum Next {
    Message(Py<PyAny>),
    End,
    TimedOut,
}

impl Request {
    fn here(handle: RequestHandle, messages: MessageStream) -> PyResult<Request> {
        let ticket_id = handle.ticket_id();
        let cancel = handle.cancellation();
        Request::watching(
            ticket_id,
            Stop::Here(cancel),
            messages,
            handle.outcome(),
            None,
        )
    }

    fn on_server(server: Arc<Server>, ticket: i64) -> PyResult<Request> {
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        let relay = runtime()?.spawn(relay_events(Arc::clone(&server), ticket, sender));
        let messages: MessageStream =
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let end = finished_on(Arc::clone(&server), ticket);
        Request::watching(
            ticket,
            Stop::Server(server),
            messages,
            end,
            Some(relay.abort_handle()),
        )
    }

    /// A request whose end `end` awaits, in a task of its own.
    fn watching<F>(
        ticket_id: i64,
        stop: Stop,
        messages: MessageStream,
        end: F,
        relay: Option<tokio::task::AbortHandle>,
    ) -> PyResult<Request>
    where
        F: std::future::Future<Output = ubuntu_ci_core::Result<RequestOutcome>> + Send + 'static,
    {
        let (ended, watch) = tokio::sync::watch::channel(false);
        let result = Arc::new(OnceLock::new());
        let keep = Arc::clone(&result);
        let waiter = runtime()?.spawn(async move {
            let _ = keep.set(end.await);
            let _ = ended.send(true);
        });
        let mut tasks = vec![waiter.abort_handle()];
        tasks.extend(relay);
        Ok(Request {
            ticket_id,
            stop,
            ended: watch,
            result,
            messages: Mutex::new(Some(messages)),
            tasks,
        })
    }

    /// The next message, waiting at most `limit` (`None`: until there is one), Ctrl-C
    /// ending the wait. Once the run ended, what is left is read, then the iteration ends
    /// (with the run's error, when it failed without saying so on its queue).
    fn next_within(&self, py: Python<'_>, limit: Option<Duration>) -> PyResult<Next> {
        let mut guard = take(&self.messages, "iterating")?;
        let Some(messages) = guard.as_mut() else {
            return Ok(Next::End);
        };
        let runtime = runtime()?;
        let started = std::time::Instant::now();
        let mut ended = self.ended.clone();
        loop {
            let wait = limit.map_or(SIGNAL_CHECK, |l| {
                l.saturating_sub(started.elapsed()).min(SIGNAL_CHECK)
            });
            let next = py.detach(|| {
                runtime.block_on(async {
                    if *ended.borrow() {
                        // Over: what is left only.
                        return tokio::time::timeout(DRAIN, messages.next())
                            .await
                            .unwrap_or(None)
                            .map_or(Waited::Over, Waited::Message);
                    }
                    tokio::select! {
                        biased;
                        message = messages.next() => message.map_or(Waited::Over, Waited::Message),
                        _ = ended.changed() => Waited::Nothing,
                        () = tokio::time::sleep(wait) => Waited::Nothing,
                    }
                })
            });
            match next {
                Waited::Message(Ok(message)) => {
                    if is_final(&message.body) {
                        *guard = None;
                    }
                    return to_python(py, &message.body).map(Next::Message);
                }
                Waited::Message(Err(err)) => {
                    *guard = None;
                    return Err(crate::errors::to_python(py, &err));
                }
                Waited::Over => {
                    *guard = None;
                    // A run that failed before it could say so on its queue.
                    if let Some(Err(err)) = self.result.get() {
                        return Err(crate::errors::to_python(py, err));
                    }
                    return Ok(Next::End);
                }
                Waited::Nothing => {
                    py.check_signals()?;
                    if limit.is_some_and(|l| started.elapsed() >= l) {
                        return Ok(Next::TimedOut);
                    }
                }
            }
        }
    }
}

/// What one wait on the runtime gave.
enum Waited {
    Message(ubuntu_ci_core::Result<QueueMessage>),
    Over,
    Nothing,
}

impl Drop for Request {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Retries `call` while the server is unreachable ([`RETRIES`] times, [`RETRY_AFTER`]
/// apart).
async fn patiently<T, F, Fut>(mut call: F) -> ubuntu_ci_core::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ubuntu_ci_core::Result<T>>,
{
    let mut failed = 0;
    loop {
        match call().await {
            Err(err) if err.kind() == ErrorKind::Unavailable && failed < RETRIES => {
                failed += 1;
                tokio::time::sleep(RETRY_AFTER).await;
            }
            other => return other,
        }
    }
}

/// The server's request once it finished (asked every [`STATUS_POLL`]).
async fn finished_on(server: Arc<Server>, ticket: i64) -> ubuntu_ci_core::Result<RequestOutcome> {
    loop {
        match patiently(|| server.landers.status(ticket)).await? {
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

/// Passes the ticket's events on as messages until the ticket closes (see
/// [`ubuntu_ci_core::tickets::follow`]), then the request's final message; stops when
/// nobody reads them any more.
async fn relay_events(
    server: Arc<Server>,
    ticket: i64,
    messages: tokio::sync::mpsc::Sender<ubuntu_ci_core::Result<QueueMessage>>,
) {
    let relayed = async {
        let mut seq = 0u64;
        let mut events = ubuntu_ci_core::tickets::follow(Arc::clone(&server.tickets), ticket);
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                () = messages.closed() => return Ok(()),
            };
            let Some(event) = event else { break };
            let event = event?;
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

/// `timeout` in seconds, checked.
fn seconds(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout
        .map(|t| {
            Duration::try_from_secs_f64(t).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "timeout: {t} is not a number of seconds"
                ))
            })
        })
        .transpose()
}

#[pymethods]
impl Request {
    /// The ticket's id.
    #[getter]
    fn ticket_id(&self) -> i64 {
        self.ticket_id
    }

    /// Asks the request to stop: its running work is ended, its PPA released, the ticket
    /// marked CANCELLED. A request that ended already is left as it is.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        match &self.stop {
            Stop::Here(cancel) => {
                cancel.cancel();
                Ok(())
            }
            Stop::Server(server) => {
                let (server, ticket) = (Arc::clone(server), self.ticket_id);
                wait(py, async move {
                    match server.landers.cancel(ticket).await {
                        // Over already: nothing to stop.
                        Err(err) if err.kind() == ErrorKind::Conflict => Ok(()),
                        other => other,
                    }
                })
            }
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.next_within(py, None)? {
            Next::Message(message) => Ok(message),
            Next::End | Next::TimedOut => Err(PyStopIteration::new_err(())),
        }
    }

    /// The next message, waiting at most `timeout` seconds (`None`: as long as it takes):
    /// `TimeoutError` when none came, `StopIteration` after the last.
    #[pyo3(signature = (timeout = None))]
    fn next_message(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        match self.next_within(py, seconds(timeout)?)? {
            Next::Message(message) => Ok(message),
            Next::End => Err(PyStopIteration::new_err(())),
            Next::TimedOut => Err(pyo3::exceptions::PyTimeoutError::new_err(
                "no message came in time",
            )),
        }
    }

    /// Waits for the request's end (at most `timeout` seconds: `TimeoutError` after) and
    /// gives the lander's result (`state`, `step`, `reason`, `ppa`, `builds`, `image`,
    /// `tests`, `published`, …) as a dict. Ctrl-C ends the wait, not the request.
    #[pyo3(signature = (timeout = None))]
    fn outcome(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let limit = seconds(timeout)?;
        let runtime = runtime()?;
        let started = std::time::Instant::now();
        let mut ended = self.ended.clone();
        loop {
            if let Some(result) = self.result.get() {
                return match result {
                    Ok(outcome) => to_python(py, outcome),
                    Err(err) => Err(crate::errors::to_python(py, err)),
                };
            }
            if limit.is_some_and(|l| started.elapsed() >= l) {
                return Err(pyo3::exceptions::PyTimeoutError::new_err(
                    "the request did not end in time",
                ));
            }
            let wait = limit.map_or(SIGNAL_CHECK, |l| {
                l.saturating_sub(started.elapsed()).min(SIGNAL_CHECK)
            });
            py.detach(|| {
                runtime.block_on(async {
                    let _ = tokio::time::timeout(wait, ended.changed()).await;
                })
            });
            py.check_signals()?;
        }
    }

    fn __repr__(&self) -> String {
        format!("Request(ticket_id={})", self.ticket_id)
    }
}
