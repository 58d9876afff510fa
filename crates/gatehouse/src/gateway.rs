//! Assembling and running a gateway from its configuration.
//!
//! Used by `gatehouse serve`, by `gatehouse demo` and by the integration
//! tests, so all three run exactly the same wiring.

mod listeners;

use listeners::{Listener, Protocol, ServerTls, Wiring};

use crate::config::GatewayConfig;
use crate::{api, files, tls};
use anyhow::{Context, Result};
use gatehouse_approvals::{Broker, RequestKind};
use gatehouse_audit::{AuditConfig, AuditLog, Durability, NewEvent};
use gatehouse_core::classify::ClassifierCache;
use gatehouse_core::events::{Event, GatewayStart, GatewayStop};
use gatehouse_core::mask::{Masker, MaskerConfig, TokenizeKey};
use gatehouse_core::pipeline::{
    AuthError, Authenticator, BoxFuture, EventRecord, Pipeline, RecordError, Recorder,
};
use gatehouse_core::policy::{self, Policy};
use gatehouse_core::signin::SignInLimiter;
use gatehouse_core::trail::{OriginalsSealer, TrailApprovals, TrailRecorder};
use gatehouse_core::Identity;
use gatehouse_identity::{AuthError as IdAuthError, DevIssuer, TokenValidator};
use gatehouse_notify::{Notification, Notifier};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often overdue approval requests and grants are expired.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Classifications kept in the cache (distinct normalized statements).
const CLASSIFIER_CACHE: usize = 10_000;

/// A gateway that is accepting connections.
pub struct RunningGateway {
    /// Where the PostgreSQL listener is bound.
    pub postgres_addr: SocketAddr,
    /// Where the MySQL listener is bound, when it runs.
    pub mysql_addr: Option<SocketAddr>,
    /// Where the HTTPS API is bound.
    pub api_addr: SocketAddr,
    /// Where the SSH listener is bound, when `[ssh]` is configured.
    pub ssh_addr: Option<SocketAddr>,
    /// Where the HTTPS listener for HTTP connections is bound, when it runs.
    pub http_addr: Option<SocketAddr>,
    /// The dev issuer, when enabled (tests and the demo mint tokens with it).
    pub dev_issuer: Option<Arc<DevIssuer>>,
    /// The audit trail.
    pub audit: AuditLog,
    /// Approval requests and access grants.
    pub broker: Broker,
    /// Webhook and Slack deliveries.
    pub notifier: Notifier,
    /// SIEM delivery, when `[siem]` has sinks.
    pub siem: Option<gatehouse_siem::Siem>,
    shutdown: watch::Sender<bool>,
    /// Ends every session (their deadlines include it) when stopping.
    stop: gatehouse_core::deadline::GatewayStop,
    /// Records still being written off the data path.
    background: tokio_util::task::TaskTracker,
    /// For the last summary of failed sign-ins as it stops.
    pipeline: Arc<Pipeline>,
    tasks: Vec<JoinHandle<()>>,
}

/// The validator, and the clock-skew leeway it was configured with (a
/// session ends when its token would stop being accepted: `exp` + leeway).
struct TokenAuthenticator(Arc<TokenValidator>, Duration);

impl Authenticator for TokenAuthenticator {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(async move {
            self.0.validate(token).await.map_err(|e| match e {
                IdAuthError::ProviderUnreachable(_) | IdAuthError::ProviderMisconfigured(_) => {
                    AuthError::Unavailable(e.to_string())
                }
                _ => AuthError::Invalid(e.to_string()),
            })
        })
    }

    fn leeway(&self) -> Duration {
        self.1
    }
}

struct AuditRecorder(AuditLog);

/// The audit store's form of a pipeline event.
pub(crate) fn new_event(event: EventRecord) -> NewEvent {
    NewEvent {
        kind: event.kind.to_string(),
        session_id: event.session_id,
        subject: event.subject,
        connection: event.connection,
        data: event.data,
    }
}

/// A typed event that concerns no session, subject or connection.
fn gateway_event(event: Event) -> NewEvent {
    new_event(EventRecord::of(event, None, None, None))
}

impl Recorder for AuditRecorder {
    fn record(&self, event: EventRecord) -> BoxFuture<'_, Result<u64, RecordError>> {
        Box::pin(async move {
            self.0.record(new_event(event)).await.map_err(|e| match e {
                gatehouse_audit::AuditError::Closed => RecordError::Closed,
                other => RecordError::Store(other.to_string()),
            })
        })
    }
}

/// Turn the broker's news into notifications. Access requests are told as
/// `grant.*` events so receivers can route them apart from held commands.
fn announcer(notifier: Notifier, public_url: String) -> gatehouse_approvals::Announcer {
    Arc::new(move |event: &str, r: &gatehouse_approvals::Request| {
        if !notifier.is_enabled() {
            return;
        }
        let event = match (r.kind, event) {
            (RequestKind::Access, "approval.requested") => "grant.requested".to_string(),
            (RequestKind::Access, "approval.approved") => "grant.approved".to_string(),
            (RequestKind::Access, "approval.denied") => "grant.denied".to_string(),
            (RequestKind::Access, "approval.expired") => "grant.expired".to_string(),
            (_, other) => other.to_string(),
        };
        notifier.notify(Notification {
            event,
            id: r.id.to_string(),
            title: r.title(),
            link: Some(format!(
                "{}/approvals/{}",
                public_url.trim_end_matches('/'),
                r.id
            )),
            data: serde_json::to_value(r).unwrap_or_default(),
        });
    })
}

/// Compile the policy, naming the line of a bad rule.
pub fn compile_policy(cfg: &GatewayConfig) -> Result<Policy> {
    policy::compile(&cfg.policy(), &cfg.source).map_err(|e| anyhow::anyhow!("invalid policy: {e}"))
}

/// Open the audit trail the configuration names.
pub fn open_audit(cfg: &GatewayConfig) -> Result<AuditLog> {
    let durability = match cfg.audit.durability.as_str() {
        "full" => Durability::Full,
        "normal" => Durability::Normal,
        other => anyhow::bail!("[audit] durability = \"{other}\": use \"full\" or \"normal\""),
    };
    // Created here for the CLI's callers; a gateway made (and checked) it
    // at start.
    let state_dir = cfg.state_dir();
    if !state_dir.is_dir() {
        gatehouse_core::private::dir(&state_dir)
            .with_context(|| format!("creating state folder {}", state_dir.display()))?;
    }
    let store = cfg.state_path(&cfg.audit.path);
    gatehouse_core::private::file(&store)
        .with_context(|| format!("making the audit store {} private", store.display()))?;
    AuditLog::open(AuditConfig {
        path: store,
        signing_key_path: cfg.state_path(&cfg.audit.signing_key),
        durability,
        sync_window: Duration::from_millis(cfg.audit.sync_window_ms.clamp(1, 1000)),
        checkpoint_every: cfg.audit.checkpoint_every,
        checkpoint_interval: Duration::from_secs(cfg.audit.checkpoint_interval_secs),
        anchor_file: Some(cfg.state_path(&cfg.audit.anchor_file)),
    })
    .context("opening the audit trail")
}

/// Record `gateway.start` (version, the signing key's fingerprint, the
/// anchor file) and `policy.loaded` (the configuration in force: its
/// SHA-256 and its text with inline secrets excluded) before any listener
/// takes a connection, so every later event runs under a recorded policy.
async fn record_start(audit: &AuditLog, cfg: &GatewayConfig) -> Result<()> {
    let fingerprint = gatehouse_audit::parse_verifying_key(audit.public_key_pem())
        .map(|k| gatehouse_audit::key_fingerprint(&k));
    let start = GatewayStart {
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        signing_key_fingerprint: fingerprint,
        anchor_file: Some(cfg.state_path(&cfg.audit.anchor_file).display().to_string()),
        checkpoint_every: Some(cfg.audit.checkpoint_every),
        checkpoint_interval_secs: Some(cfg.audit.checkpoint_interval_secs),
    };
    audit
        .record(gateway_event(Event::GatewayStart(start)))
        .await
        .context("recording the gateway's start in the audit trail")?;
    let loaded = crate::policytext::policy_loaded(&cfg.source, "start");
    audit
        .record(gateway_event(Event::PolicyLoaded(loaded)))
        .await
        .context("recording the policy in force in the audit trail")?;
    Ok(())
}

/// The dev issuer signs a token for whoever reaches it: refuse to run it
/// on an API listener that is not loopback.
fn dev_issuer_on_loopback(cfg: &GatewayConfig, dev_on: bool, api: SocketAddr) -> Result<()> {
    if !dev_on || api.ip().is_loopback() {
        return Ok(());
    }
    anyhow::bail!(
        "the dev issuer only runs on a loopback API listener, and [api] listen is {api}: {}",
        if cfg.identity.dev_issuer == Some(true) {
            "set [identity] dev_issuer = false (and configure [[identity.issuers]]) or listen on 127.0.0.1"
        } else {
            "configure your identity provider in [[identity.issuers]] (the dev issuer then stays off) or listen on 127.0.0.1"
        }
    )
}

/// Record each window's summary of failed sign-ins as the window ends,
/// also when no sign-in comes after it to notice.
async fn sum_up_sign_ins(pipeline: Arc<Pipeline>, mut shutdown: watch::Receiver<bool>) {
    let every = pipeline.sign_ins.limits().window;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {
                let summary = pipeline.sign_ins.take_summary(std::time::Instant::now());
                pipeline.record_sign_in_summary(summary).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Load the dev issuer's key (creating it on first use).
pub fn dev_issuer(cfg: &GatewayConfig, issuer_url: &str) -> Result<DevIssuer> {
    DevIssuer::load_or_create(&cfg.state_dir(), issuer_url).context("loading the dev issuer key")
}

fn tokenize_key(cfg: &GatewayConfig) -> Result<TokenizeKey> {
    let m = &cfg.masking;
    let bytes = if let Some(var) = &m.tokenize_key_env {
        std::env::var(var)
            .with_context(|| {
                format!("[masking] tokenize_key_env: environment variable {var} is not set")
            })?
            .into_bytes()
    } else {
        let path = m
            .tokenize_key_file
            .clone()
            .map(|p| cfg.state_path(&p))
            .unwrap_or_else(|| cfg.state_path(Path::new("tokenize.key")));
        files::read_or_create_secret(&path, 32)
            .with_context(|| format!("reading tokenize key {}", path.display()))?
    };
    Ok(TokenizeKey::new(bytes))
}

/// The web console's routes, or none (with a warning) when no sign-in is
/// configured for it.
fn console(cfg: &GatewayConfig, deps: gatehouse_console::ConsoleDeps) -> Result<axum::Router> {
    match gatehouse_console::router(&cfg.console, deps) {
        Ok(router) => Ok(router),
        Err(gatehouse_console::ConsoleError::NoSignIn) => {
            tracing::warn!("the web console is off: set [console] issuer to sign people in with your identity provider");
            Ok(axum::Router::new())
        }
        Err(e) => Err(anyhow::Error::new(e).context("setting up the web console ([console])")),
    }
}

/// The console's view of recent webhook and Slack deliveries.
fn deliveries(notifier: Notifier) -> Arc<dyn Fn() -> Vec<serde_json::Value> + Send + Sync> {
    Arc::new(move || {
        notifier
            .deliveries()
            .iter()
            .filter_map(|d| serde_json::to_value(d).ok())
            .collect()
    })
}

impl RunningGateway {
    /// Start every listener the configuration asks for.
    pub async fn start(cfg: &GatewayConfig) -> Result<RunningGateway> {
        tls::install_crypto_provider();
        let policy = Arc::new(compile_policy(cfg)?);
        let state_dir = cfg.state_dir();
        gatehouse_core::private::dir(&state_dir)
            .with_context(|| format!("creating state folder {}", state_dir.display()))?;
        // The API is bound first: its address is the dev issuer's and the
        // console's public URL unless one is configured.
        // The dev issuer never answers off loopback: refused before
        // anything is bound when the address says so, and again once bound
        // (a host name).
        let dev_on = cfg.identity.dev_issuer_on();
        if let Ok(addr) = cfg.api.listen.parse::<SocketAddr>() {
            dev_issuer_on_loopback(cfg, dev_on, addr)?;
        }
        let api_listener = listeners::bind(&cfg.api.listen, "[api] listen").await?;
        let api_addr = api_listener.local_addr()?;
        dev_issuer_on_loopback(cfg, dev_on, api_addr)?;

        // The validator and the API each hold the dev issuer's key (it is
        // read from the same file), so tokens it signs verify in-process.
        let dev_url = format!("https://{api_addr}/dev");
        let (dev, dev_for_validator) = if dev_on {
            (
                Some(Arc::new(dev_issuer(cfg, &dev_url)?)),
                Some(dev_issuer(cfg, &dev_url)?),
            )
        } else {
            (None, None)
        };
        let validator = Arc::new(
            TokenValidator::new(
                cfg.identity.issuers.clone(),
                dev_for_validator,
                Duration::from_secs(cfg.identity.leeway_secs),
            )
            .context("configuring token validation")?
            .with_refetch_interval(Duration::from_secs(cfg.identity.jwks_min_refetch_secs)),
        );
        let audit = open_audit(cfg)?;
        record_start(&audit, cfg).await?;
        // SIEM sinks follow the store on their own tasks, off the data path.
        let siem = if cfg.siem.is_enabled() {
            Some(
                gatehouse_siem::Siem::start(
                    &cfg.siem,
                    &cfg.state_path(&cfg.audit.path),
                    &state_dir,
                    &cfg.base_dir,
                )
                .context("starting SIEM delivery ([siem])")?,
            )
        } else {
            None
        };
        let masker = Arc::new(Masker::new(MaskerConfig {
            detectors: policy.masking.detectors.clone(),
            strategies: policy.masking.strategies.clone(),
            default_strategy: policy.masking.default_strategy.clone(),
            tokenize_key: tokenize_key(cfg)?,
        }));
        let recipient = match &cfg.audit.seal_originals_to {
            None => None,
            Some(text) => Some(
                gatehouse_seal::Recipient::parse(text)
                    .map_err(|e| anyhow::anyhow!("[audit] seal_originals_to: {e}"))?,
            ),
        };
        let trail_sealer = recipient.clone().map(|recipient| {
            OriginalsSealer(Arc::new(move |plain: &[u8]| {
                gatehouse_seal::seal(&recipient, plain)
            }))
        });
        // Every event passes the trail guard: no clear PII in the trail,
        // whichever adapter or component produced it.
        let recorder: Arc<dyn Recorder> = Arc::new(TrailRecorder::new(
            Arc::new(AuditRecorder(audit.clone())),
            masker.clone(),
            trail_sealer.clone(),
        ));
        let public_url = cfg
            .api
            .public_url
            .clone()
            .unwrap_or_else(|| format!("https://{api_addr}"));
        let broker = Broker::open(
            &cfg.state_path(&cfg.approvals.path),
            recorder.clone(),
            policy.clone(),
            &public_url,
        )
        .context("opening the approvals store")?;
        let orphans = broker
            .withdraw_orphans("the gateway restarted; the session that held it is gone")
            .await
            .context("withdrawing requests left open by the last run")?;
        if orphans > 0 {
            tracing::warn!(
                orphans,
                "withdrew held commands whose sessions ended with the last run"
            );
        }
        let notifier = if cfg.notify.has_receivers() {
            gatehouse_notify::Notifier::start(&cfg.notify, &cfg.base_dir)
                .context("starting notifications ([notify])")?
        } else {
            gatehouse_notify::Notifier::disabled()
        };
        broker.set_announcer(announcer(notifier.clone(), public_url.clone()));
        let pipeline = Arc::new(Pipeline {
            policy: policy.clone(),
            classifier: ClassifierCache::new(CLASSIFIER_CACHE),
            masker: masker.clone(),
            authenticator: Arc::new(TokenAuthenticator(
                validator.clone(),
                Duration::from_secs(cfg.identity.leeway_secs),
            )),
            recorder,
            // Approvers see a held command masked as the trail keeps it.
            approvals: Some(Arc::new(TrailApprovals::new(
                Arc::new(broker.clone()),
                masker.clone(),
                policy.clone(),
            ))),
            grants: Some(Arc::new(broker.clone())),
            sealer: trail_sealer,
            stop: Default::default(),
            background: Default::default(),
            sign_ins: SignInLimiter::new(cfg.identity.sign_in_failures.limits()),
        });
        let extra = api::approvals::router(api::approvals::ApiState {
            broker: broker.clone(),
            pipeline: pipeline.clone(),
            auditor_groups: Arc::new(cfg.console.auditor_groups.clone()),
            audit: audit.clone(),
            audit_db: cfg.state_path(&cfg.audit.path),
        });
        // The dev sign-in page lets anyone who reaches it be anyone: only on
        // a loopback listener with no real issuer configured (the demo).
        // Behind a proxy, loopback is not local: a public URL that is not
        // loopback also keeps the page off.
        let public_is_loopback = cfg.api.public_url.as_deref().is_none_or(|u| {
            u.parse::<axum::http::Uri>()
                .ok()
                .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string()))
                .is_some_and(|h| {
                    h.eq_ignore_ascii_case("localhost")
                        || h.parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                })
        });
        let dev_signin =
            api_addr.ip().is_loopback() && public_is_loopback && cfg.identity.issuers.is_empty();
        let console = console(
            cfg,
            gatehouse_console::ConsoleDeps {
                broker: broker.clone(),
                validator: validator.clone(),
                dev_issuer: dev_signin.then(|| dev.clone()).flatten(),
                audit_db: cfg.state_path(&cfg.audit.path),
                audit_public_key: gatehouse_audit::public_key_path(
                    &cfg.state_path(&cfg.audit.signing_key),
                ),
                audit_verify: gatehouse_audit::VerifyOptions {
                    configured_policy: Some(cfg.audit.checkpoint_policy()),
                    anchor_file: Some(cfg.state_path(&cfg.audit.anchor_file)),
                    ..Default::default()
                },
                recordings_dir: Some(cfg.recordings_dir()),
                deliveries: deliveries(notifier.clone()),
                public_url: public_url.clone(),
            },
        )?;
        let extra = extra.merge(console);
        let dev_endpoints = (dev_signin && cfg.console.issuer.is_none())
            .then(|| gatehouse_console::dev_discovery_endpoints(&public_url));

        let (cert, key) = tls::cert_paths(
            cfg.postgres.tls_cert.as_deref(),
            cfg.postgres.tls_key.as_deref(),
            &state_dir,
        )?;
        let server_tls = ServerTls {
            database: tls::server_config(&cert, &key, &[])?,
            https: tls::server_config(&cert, &key, &[b"h2", b"http/1.1"])?,
        };
        let api_tls = server_tls.https.clone();
        let seal_originals = match recipient {
            None => None,
            Some(recipient) => {
                if cfg.postgres.result_capture_rows == 0 {
                    tracing::warn!("[audit] seal_originals_to is set but [postgres] result_capture_rows is 0: no result rows are captured, so only command texts are sealed");
                }
                Some(gatehouse_postgres::OriginalsSealer(Arc::new(
                    move |plain: &[u8]| gatehouse_seal::seal(&recipient, plain),
                )))
            }
        };
        let protocols = listeners::protocol_listeners(Wiring {
            cfg,
            pipeline: &pipeline,
            tls: &server_tls,
            seal_originals,
        })
        .await?;
        let (shutdown, rx) = watch::channel(false);
        let addr_of = |protocol| {
            protocols
                .iter()
                .find(|l: &&Listener| l.protocol == protocol)
                .map(|l| l.addr)
        };
        let (postgres_addr, mysql_addr, ssh_addr, http_addr) = (
            addr_of(Protocol::Postgres).context("the PostgreSQL listener is always served")?,
            addr_of(Protocol::Mysql),
            addr_of(Protocol::Ssh),
            addr_of(Protocol::Http),
        );
        let mut tasks: Vec<JoinHandle<()>> = protocols
            .into_iter()
            .map(|l| tokio::spawn((l.serve)(rx.clone())))
            .collect();
        tasks.extend([
            tokio::spawn(api::serve(
                api_listener,
                api_tls,
                dev.clone(),
                dev_endpoints,
                extra,
                rx.clone(),
            )),
            tokio::spawn(broker.clone().run_sweeper(SWEEP_EVERY, rx.clone())),
            tokio::spawn(sum_up_sign_ins(pipeline.clone(), rx)),
        ]);
        tracing::info!(%postgres_addr, ?mysql_addr, ?ssh_addr, ?http_addr, %api_addr, "gatehouse is listening");
        Ok(RunningGateway {
            postgres_addr,
            mysql_addr,
            ssh_addr,
            http_addr,
            api_addr,
            dev_issuer: dev,
            audit,
            broker,
            notifier,
            siem,
            shutdown,
            stop: pipeline.stop.clone(),
            background: pipeline.background.clone(),
            pipeline,
            tasks,
        })
    }

    /// Stop gracefully: stop accepting, end every session (each tells its
    /// client why and records its end; held commands are withdrawn), wait
    /// for them to drain, then close the audit trail with a signed
    /// checkpoint.
    pub async fn shutdown(self) {
        self.stop.stop();
        let _ = self.shutdown.send(true);
        let drain = gatehouse_core::serve::DEFAULT_DRAIN_TIMEOUT + Duration::from_secs(5);
        for t in self.tasks {
            let _ = tokio::time::timeout(drain, t).await;
        }
        // A session cut at the end of the drain withdraws its request from
        // a task of its own; whatever is still open now can never run.
        if let Err(e) = self
            .broker
            .withdraw_orphans("the gateway stopped; the session that held it is gone")
            .await
        {
            tracing::error!(error = %e, "could not withdraw the open approval requests");
        }
        // Results, withdrawals and session ends still being written go in
        // before the stop and the closing checkpoint.
        self.background.close();
        if tokio::time::timeout(Duration::from_secs(5), self.background.wait())
            .await
            .is_err()
        {
            tracing::error!("records still being written when the trail closed");
        }
        self.notifier.shutdown(Duration::from_secs(2)).await;
        self.pipeline
            .record_sign_in_summary(self.pipeline.sign_ins.close())
            .await;
        // The stop is in the trail before the closing checkpoint signs it.
        let stop = GatewayStop {
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            reason: "shutdown".to_string(),
        };
        if let Err(e) = self
            .audit
            .record(gateway_event(Event::GatewayStop(stop)))
            .await
        {
            tracing::error!(error = %e, "could not record the gateway's stop");
        }
        self.audit.close().await;
        // Whatever the sinks have not confirmed yet goes out after the next
        // start, from their cursors.
        if let Some(siem) = self.siem {
            siem.shutdown(Duration::from_secs(2)).await;
        }
    }
}
