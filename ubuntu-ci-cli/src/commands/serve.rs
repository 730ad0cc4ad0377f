//! `ubuntu-ci serve`: the REST API and the data store over HTTP, and the lander that runs
//! the requests of tickets handed to it through the API (and resumes unfinished ones).

use clap::Args;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::Lander;
use ubuntu_ci_core::server::{self, ServerState};
use ubuntu_ci_core::Error;

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: `listen` in the config, else 127.0.0.1:8000]
    #[arg(long, env = "UBUNTU_CI_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// URL clients reach this server at, used in stored objects' URLs [default: http://ADDR/]
    #[arg(long, env = "UBUNTU_CI_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Serve the API and the store only: run no lander (tickets handed to it are refused
    /// with 501, unfinished requests are left alone)
    #[arg(long)]
    pub no_lander: bool,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    if config.server.is_some() {
        return Err(Error::invalid(
            "serve runs a server on local state; --server/UBUNTU_CI_SERVER is for clients",
        )
        .into());
    }
    if let Some(listen) = args.listen {
        config.listen = Some(listen);
    }
    if let Some(url) = args.public_url {
        config.public_url = Some(url);
    }
    // A server takes uploads from others: signatures are required unless configured off.
    config
        .uploads
        .signatures
        .get_or_insert(ubuntu_ci_core::upload::signature::SignaturePolicy::Require);
    let listener = tokio::net::TcpListener::bind(config.listen())
        .await
        .map_err(|e| Error::from(e).with_resource(format!("listen {}", config.listen())))?;
    let address = listener.local_addr()?;
    let public_url = config.serve_url(address)?;
    let services = config.connect(Some(public_url.join("store/")?)).await?;
    if let Some(problem) = services.uploads.problem() {
        eprintln!("ubuntu-ci serve: warning: {problem}");
    }
    let data_dir = config.data_dir()?;
    let (token, created) = server::load_or_create_token(&data_dir, config.token.as_deref())?;
    if created {
        // Where it is, not what it is: logs keep what is printed.
        eprintln!(
            "ubuntu-ci serve: a new API token is in {} (mode 0600; clients pass it with \
             --token or UBUNTU_CI_TOKEN)",
            data_dir.join("api-token").display()
        );
    }
    if public_url.as_str() == format!("http://{address}/") {
        println!("ubuntu-ci serve: listening on {public_url}");
    } else {
        println!("ubuntu-ci serve: listening on {address}, reachable at {public_url}");
    }
    let mut state = ServerState::new(services.clone(), token, public_url).with_limits(config.serve);
    if let Some(archives) = services.archives.local().filter(|_| !args.no_lander) {
        let series = archives.series(None)?;
        let lander = Lander::new(services.clone(), config.lander_options(&series)?);
        state = state.with_lander(lander.clone());
        tokio::spawn(adopt(lander));
    }
    server::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// How often the server looks for requests no lander runs any more.
const ADOPT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Resumes the requests left unfinished (a lander killed, here or in a `create-ticket
/// --wait`), at start and then every [`ADOPT_EVERY`]: claims keep it off the requests a
/// living lander runs.
async fn adopt(lander: Lander) {
    loop {
        match lander.resume_in_background(CancellationToken::new()).await {
            Ok(handles) => {
                for handle in handles {
                    let ticket = handle.ticket_id();
                    eprintln!("ubuntu-ci serve: resuming the request of ticket {ticket}");
                    tokio::spawn(async move {
                        if let Err(err) = handle.outcome().await {
                            eprintln!(
                                "ubuntu-ci serve: the lander of ticket {ticket} failed: {err}"
                            );
                        }
                    });
                }
            }
            Err(err) => eprintln!("ubuntu-ci serve: cannot look for unfinished requests: {err}"),
        }
        tokio::time::sleep(ADOPT_EVERY).await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
