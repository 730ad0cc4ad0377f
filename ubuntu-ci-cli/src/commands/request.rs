//! A lander's request run here and followed live (`create-ticket --wait`, `retry`), and
//! the exit status of how it ended.

use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::RequestHandle;
use ubuntu_ci_core::queue::{Done, DoneState, MessageStream};

use crate::exit::{RequestDidNotComplete, TestsDidNotPass};
use crate::follow::{follow, LogTo};

/// Shows the request's progress (`messages`, its queue) until it ends, Ctrl-C cancelling
/// it, then prints the ticket's URL (`ticket_uri`) and ends as the request did.
///
/// # Errors
/// [`TestsDidNotPass`] when its tests failed, [`RequestDidNotComplete`] when it ended
/// otherwise short of COMPLETE; the queue's or the lander's errors.
pub async fn follow_request(
    config: &Config,
    json: bool,
    command: &str,
    ticket_uri: &str,
    messages: MessageStream,
    handle: RequestHandle,
) -> anyhow::Result<()> {
    let cancel = handle.cancellation();
    let running = tokio::spawn(async move { Ok(handle.outcome().await?.to_done()) });
    let done = follow(command, messages, running, &cancel, json, LogTo::Stderr).await?;
    if !json {
        println!("{}", config.resource_url(ticket_uri)?);
    }
    ended(&done)
}

/// Ok when the request's final message says it completed; otherwise the error whose exit
/// status says how it ended (10: tests failed, 11: any other step).
pub fn ended(done: &Done) -> anyhow::Result<()> {
    if done.state == DoneState::Completed {
        return Ok(());
    }
    let step = done
        .results
        .get("step")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let reason = done.reason.clone().unwrap_or_default();
    let cancelled = done
        .results
        .get("outcome")
        .and_then(serde_json::Value::as_str)
        == Some("CANCELLED");
    if step == "IMAGE_TEST" && !cancelled {
        return Err(TestsDidNotPass(format!("FAILED ({reason})")).into());
    }
    Err(RequestDidNotComplete { step, reason }.into())
}
