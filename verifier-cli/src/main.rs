//! `verifier-cli`: the standalone auditor and client of the key-transparency log.
//!
//! It trusts only the log's note verifier key (`--log-key`), the directory's VRF public key
//! (`--vrf-key`) and, for credentials, the CA certificate (`--ca`); everything fetched is
//! verified against them. It depends on kt-log's
//! verification half only (no storage, no async runtime). See docs/auditing.md.
//!
//! Every check is a function of the `kt_verify` library (no network, file or clock access);
//! this binary reads arguments and files, fetches, keeps state, and prints. One job per file:
//! `trust` (anchors), `client` (HTTPS), `wire` (requests, problems, proof files), `describe`
//! (how verified credentials are shown), `state` (state folder), `sync` (consistency with
//! saved state), `fork` (evidence on disk), `download` (tiles and tree recomputation),
//! `audit_map` (the audit's saved map), `offline`, `online`, `audit`, `monitor`,
//! `enroll` (commands), `output` (human/JSON), `error` (exit codes).
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod audit;
mod audit_map;
mod client;
mod cover;
mod describe;
mod download;
mod enroll;
mod error;
mod fork;
mod monitor;
mod offline;
mod online;
mod output;
mod state;
mod sync;
mod trust;
mod wire;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::client::{Client, TlsTrust};
use crate::error::{Error, ExitCode};
use crate::output::Outcome;
use crate::state::StateDir;
use crate::trust::Ca;

const EXIT_CODES: &str = "\
Exit codes:
  0  verified / ok
  1  verification failed (bad signature or proof, not in the log, revoked, expired,
     unexpected key, malformed data to verify, problems found by the audit)
  2  usage error (bad flags, unusable --log-key or --ca)
  3  network or I/O error (file unreadable, server unreachable or refusing)
  4  FORK DETECTED: two signed checkpoints that cannot both be honest; evidence written";

/// Standalone auditor and client for the key-transparency log.
///
/// Trusts only the log's note verifier key and the CA certificate; every fetched byte is
/// verified before it is reported.
#[derive(Parser, Debug)]
#[command(name = "verifier-cli", version, after_help = EXIT_CODES, arg_required_else_help = true)]
struct Cli {
    /// Print one JSON object on stdout instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Checkpoints: verify a file, or fetch the server's and prove it consistent.
    #[command(subcommand)]
    Checkpoint(CheckpointCmd),
    /// Inclusion proofs (offline).
    #[command(subcommand)]
    Inclusion(InclusionCmd),
    /// Consistency proofs (offline).
    #[command(subcommand)]
    Consistency(ConsistencyCmd),
    /// Credential bundles as POST /v1/credentials returns them (offline).
    #[command(subcommand)]
    Bundle(BundleCmd),
    /// Fork evidence (offline).
    #[command(subcommand)]
    Fork(ForkCmd),
    /// Check a certificate: CA signature, validity, CRL, current in the directory.
    Credential(CredentialArgs),
    /// Fetch an identity's complete state (or proof of absence) and verify it before printing;
    /// `lookup verify FILE` re-checks a saved answer offline.
    Lookup(LookupArgs),
    /// Exit 0 iff KEY is a current, unexpired, unrevoked key of IDENTITY's complete state.
    Validate(ValidateArgs),
    /// Audit the whole log: download every new entry, recompute the tree and every map root.
    Audit(AuditArgs),
    /// Check identities' every change since the last run, in O(log n); fail on unexpected keys.
    Monitor(MonitorArgs),
    /// Compare two auditors' saved checkpoints (state folders or checkpoint files).
    Compare(CompareArgs),
    /// Enroll: generate a key, prove possession, verify and save the credential.
    Enroll(EnrollArgs),
    /// Rotate: replace a held credential's key by a new one (both sign), verify and save.
    Rotate(RotateArgs),
}

#[derive(Args, Debug)]
struct LogKey {
    /// The log's note verifier key (name+keyid+base64), or a file holding it.
    #[arg(long, env = "KT_LOG_KEY", value_name = "KEY|FILE")]
    log_key: String,
    /// The directory's VRF public key (base64), or a file holding it. Default: vrf-key.pub
    /// beside the --log-key file.
    #[arg(long, env = "KT_VRF_KEY", value_name = "KEY|FILE")]
    vrf_key: Option<String>,
}

impl LogKey {
    fn vrf(&self) -> Result<kt_protocol::directory::vrf::VrfPublicKey, Error> {
        trust::load_vrf_key(self.vrf_key.as_deref(), &self.log_key)
    }
}

#[derive(Args, Debug)]
struct PolicyArg {
    /// A witness policy (C2SP tlog-policy): refuse every checkpoint that is not cosigned by
    /// its quorum of witnesses, and an answer's checkpoint (signed by the log alone) unless a
    /// checkpoint the quorum cosigned covers it within 10 s (docs/witness.md). Without it,
    /// the log's signature suffices.
    #[arg(long, env = "KT_WITNESS_POLICY", value_name = "FILE")]
    witness_policy: Option<PathBuf>,
}

impl PolicyArg {
    fn load(&self) -> Result<trust::Witnesses, Error> {
        trust::Witnesses::load(self.witness_policy.as_deref())
    }
}

#[derive(Args, Debug)]
struct CaArg {
    /// The CA certificate (PEM or DER) that signs credentials.
    #[arg(long, env = "KT_CA", value_name = "FILE")]
    ca: PathBuf,
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// The server, https://host:port.
    #[arg(long, env = "KT_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Trust only these PEM certificates for the server's TLS (e.g. its self-signed one).
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<PathBuf>,
    /// Do not verify the server's TLS certificate (results are still verified with the log
    /// key and CA, but the connection is not authenticated).
    #[arg(long, conflicts_with = "tls_ca")]
    insecure_skip_tls_verify: bool,
}

#[derive(Args, Debug)]
struct StateArg {
    /// State folder: last verified checkpoint per log, audit progress, fork evidence.
    /// Default: $XDG_STATE_HOME/verifier-cli or ~/.local/state/verifier-cli.
    #[arg(long, env = "KT_STATE", value_name = "DIR")]
    state: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum CheckpointCmd {
    /// Verify a checkpoint file's signature (offline).
    Verify {
        #[command(flatten)]
        key: LogKey,
        #[command(flatten)]
        policy: PolicyArg,
        /// The signed checkpoint note.
        file: PathBuf,
    },
    /// Fetch /log/checkpoint, verify it, prove it consistent with the saved one, save it.
    Fetch {
        #[command(flatten)]
        key: LogKey,
        #[command(flatten)]
        policy: PolicyArg,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        state: StateArg,
    },
}

#[derive(Subcommand, Debug)]
enum InclusionCmd {
    /// Verify that an entry (raw bytes) is at --index in the checkpoint's tree.
    Verify {
        #[command(flatten)]
        key: LogKey,
        #[command(flatten)]
        policy: PolicyArg,
        /// The signed checkpoint note.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Leaf index (optional if the proof file names it).
        #[arg(long)]
        index: Option<u64>,
        /// The entry's exact bytes.
        #[arg(long)]
        entry: PathBuf,
        /// JSON array of base64 hashes, or {"index","size","proof"}.
        #[arg(long)]
        proof: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ConsistencyCmd {
    /// Verify that --old is a prefix of --new.
    Verify {
        #[command(flatten)]
        key: LogKey,
        #[command(flatten)]
        policy: PolicyArg,
        /// The older checkpoint.
        #[arg(long)]
        old: PathBuf,
        /// The newer checkpoint.
        #[arg(long)]
        new: PathBuf,
        /// JSON array of base64 hashes, or {"from","to","proof"}.
        #[arg(long)]
        proof: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum BundleCmd {
    /// Verify a Credential JSON: chain to the CA, entry holds the certificate, inclusion.
    Verify {
        #[command(flatten)]
        key: LogKey,
        #[command(flatten)]
        policy: PolicyArg,
        #[command(flatten)]
        ca: CaArg,
        /// The Credential JSON.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ForkCmd {
    /// Re-check fork evidence; exit 4 if it proves a fork, 1 if it does not. With
    /// --witness-policy, also name the policy's witnesses that cosigned both sides of a
    /// split view.
    Verify {
        #[command(flatten)]
        key: LogKey,
        #[command(flatten)]
        policy: PolicyArg,
        /// The evidence JSON.
        file: PathBuf,
    },
}

/// What every online command that checks credentials needs: the log key, the CA, the server
/// and the state folder.
#[derive(Args, Debug)]
struct OnlineTrust {
    #[command(flatten)]
    key: LogKey,
    #[command(flatten)]
    ca: CaArg,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    state: StateArg,
}

impl OnlineTrust {
    /// The verified-trust client requiring `policy`, and the CA.
    fn open_with(&self, policy: &PolicyArg) -> Result<(online::Online, Ca), Error> {
        let mut online = online(&self.key, &self.server, &self.state)?;
        online.witnesses = policy.load()?;
        Ok((online, ca(&self.ca)?))
    }
}

#[derive(Args, Debug)]
struct CredentialArgs {
    #[command(flatten)]
    trust: OnlineTrust,
    #[command(flatten)]
    policy: PolicyArg,
    /// The certificate (PEM or DER).
    cert: PathBuf,
}

#[derive(Args, Debug)]
struct LookupArgs {
    #[command(flatten)]
    trust: OnlineTrust,
    #[command(flatten)]
    policy: PolicyArg,
    /// Also write the verified answer to this file (to re-check it later with `lookup verify`).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// IDENTITY, or `verify FILE` to re-check a saved answer offline.
    #[arg(required = true, num_args = 1..=2, value_name = "IDENTITY | verify FILE")]
    what: Vec<String>,
}

#[derive(Args, Debug)]
struct ValidateArgs {
    #[command(flatten)]
    trust: OnlineTrust,
    #[command(flatten)]
    policy: PolicyArg,
    /// The identity (local@domain).
    identity: String,
    /// The Ed25519 public key, base64 of 32 bytes.
    public_key: String,
}

#[derive(Args, Debug)]
struct TileArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Read the checkpoint and tiles from a local folder laid out like /log/ instead of a
    /// server (consistency with saved state is then shown by recomputation).
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    tiles: Option<PathBuf>,
    /// Download threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
}

#[derive(Args, Debug)]
struct AuditArgs {
    #[command(flatten)]
    key: LogKey,
    #[command(flatten)]
    policy: PolicyArg,
    #[command(flatten)]
    source: TileArgs,
    #[command(flatten)]
    state: StateArg,
}

#[derive(Args, Debug)]
struct MonitorArgs {
    #[command(flatten)]
    key: LogKey,
    #[command(flatten)]
    ca: CaArg,
    #[command(flatten)]
    policy: PolicyArg,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    state: StateArg,
    /// File of expected keys: one base64 key per line, optionally "IDENTITY KEY".
    #[arg(long, value_name = "FILE")]
    expect_keys: PathBuf,
    /// Identities to watch.
    #[arg(required = true)]
    identities: Vec<String>,
}

#[derive(Args, Debug)]
struct CompareArgs {
    #[command(flatten)]
    key: LogKey,
    #[command(flatten)]
    server: ServerArgs,
    /// Consistency proof file between the two sizes (instead of asking --server).
    #[arg(long, conflicts_with = "server")]
    proof: Option<PathBuf>,
    /// Where to write fork evidence (default: the state folder).
    #[command(flatten)]
    state: StateArg,
    /// First view: a state folder or a checkpoint file.
    a: PathBuf,
    /// Second view: a state folder or a checkpoint file.
    b: PathBuf,
}

#[derive(Args, Debug)]
struct EnrollArgs {
    #[command(flatten)]
    trust: OnlineTrust,
    #[command(flatten)]
    policy: PolicyArg,
    /// The identity to enroll.
    #[arg(long)]
    identity: String,
    /// The enrollment token from the admin (base64url: it may start with `-`).
    #[arg(long, env = "KT_ENROLLMENT_TOKEN", allow_hyphen_values = true)]
    token: String,
    /// Where to write the new private key (PKCS#8 PEM, mode 0600; must not exist).
    #[arg(long, value_name = "FILE")]
    key_out: PathBuf,
    /// Where to write the verified Credential JSON (must not exist).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct RotateArgs {
    #[command(flatten)]
    trust: OnlineTrust,
    #[command(flatten)]
    policy: PolicyArg,
    /// The current private key (PKCS#8 PEM, as `enroll` wrote it).
    #[arg(long = "key", value_name = "FILE")]
    current_key: PathBuf,
    /// The current Credential JSON (as `enroll` or `rotate` saved it).
    #[arg(long, value_name = "FILE")]
    credential: PathBuf,
    /// Where to write the new private key (PKCS#8 PEM, mode 0600; must not exist).
    #[arg(long, value_name = "FILE")]
    key_out: PathBuf,
    /// Where to write the verified new Credential JSON (must not exist).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Current Unix time in seconds.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ServerArgs {
    fn client(&self) -> Result<Client, Error> {
        let server = self
            .server
            .as_deref()
            .ok_or_else(|| Error::Usage("--server is required".into()))?;
        let trust = if self.insecure_skip_tls_verify {
            TlsTrust::DangerSkipVerification
        } else if let Some(path) = &self.tls_ca {
            TlsTrust::from_pem_file(path)?
        } else {
            TlsTrust::WebPki
        };
        Client::new(server, trust)
    }
}

impl StateArg {
    fn path(&self) -> Result<PathBuf, Error> {
        if let Some(p) = &self.state {
            return Ok(p.clone());
        }
        if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
            return Ok(PathBuf::from(x).join("verifier-cli"));
        }
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/state/verifier-cli"))
            .ok_or_else(|| Error::Usage("--state is required (no HOME)".into()))
    }
    fn open(&self) -> Result<StateDir, Error> {
        StateDir::open(&self.path()?)
    }
}

fn online(key: &LogKey, server: &ServerArgs, state: &StateArg) -> Result<online::Online, Error> {
    Ok(online::Online {
        verifier: trust::load_log_key(&key.log_key)?,
        vrf_arg: (key.vrf_key.clone(), key.log_key.clone()),
        client: server.client()?,
        state: state.open()?,
        witnesses: trust::Witnesses::none(),
    })
}

fn ca(arg: &CaArg) -> Result<Ca, Error> {
    trust::load_ca(&arg.ca)
}

fn tiles_and_proofs(
    args: &TileArgs,
    run: impl FnOnce(
        &dyn download::TileSource,
        Option<&dyn sync::ProofSource>,
    ) -> Result<Outcome, Error>,
) -> Result<Outcome, Error> {
    match &args.tiles {
        Some(dir) => run(&download::DirTiles(dir.clone()), None),
        None => {
            let client = args.server.client()?;
            run(&download::HttpTiles(&client), Some(&client))
        }
    }
}

fn run(command: &Command, json: bool) -> Result<Outcome, Error> {
    use trust::load_log_key as key;
    match command {
        Command::Checkpoint(CheckpointCmd::Verify {
            key: k,
            policy,
            file,
        }) => offline::checkpoint_verify(file, &key(&k.log_key)?, &policy.load()?),
        Command::Checkpoint(CheckpointCmd::Fetch {
            key: k,
            policy,
            server,
            state,
        }) => {
            let mut online = online(k, server, state)?;
            online.witnesses = policy.load()?;
            online::checkpoint_fetch(&online)
        }
        Command::Inclusion(InclusionCmd::Verify {
            key: k,
            policy,
            checkpoint,
            index,
            entry,
            proof,
        }) => offline::inclusion_verify(
            &key(&k.log_key)?,
            &policy.load()?,
            checkpoint,
            *index,
            entry,
            proof,
        ),
        Command::Consistency(ConsistencyCmd::Verify {
            key: k,
            policy,
            old,
            new,
            proof,
        }) => offline::consistency_verify(&key(&k.log_key)?, &policy.load()?, old, new, proof),
        Command::Bundle(BundleCmd::Verify {
            key: k,
            policy,
            ca: c,
            file,
        }) => offline::bundle_verify(&key(&k.log_key)?, &k.vrf()?, &policy.load()?, &ca(c)?, file),
        Command::Fork(ForkCmd::Verify {
            key: k,
            policy,
            file,
        }) => offline::fork_verify(&key(&k.log_key)?, &policy.load()?, file),
        Command::Credential(a) => {
            let (online, ca) = a.trust.open_with(&a.policy)?;
            online::credential(&online, &ca, &a.cert)
        }
        Command::Lookup(a) => match a.what.as_slice() {
            [verb, file] if verb == "verify" => offline::lookup_verify(
                &key(&a.trust.key.log_key)?,
                &a.trust.key.vrf()?,
                &a.policy.load()?,
                &ca(&a.trust.ca)?,
                Path::new(file),
            ),
            [identity] => {
                let (online, ca) = a.trust.open_with(&a.policy)?;
                online::lookup(&online, &ca, identity, a.save.as_deref())
            }
            _ => Err(Error::Usage(
                "lookup takes IDENTITY, or `verify FILE`".into(),
            )),
        },
        Command::Validate(a) => {
            let (online, ca) = a.trust.open_with(&a.policy)?;
            online::validate(&online, &ca, &a.identity, &a.public_key)
        }
        Command::Audit(a) => {
            let verifier = key(&a.key.log_key)?;
            let state = a.state.open()?;
            let options = audit::AuditOptions {
                threads: a.source.threads,
                progress: !json,
                witnesses: a.policy.load()?,
            };
            tiles_and_proofs(&a.source, |tiles, proofs| {
                audit::audit(tiles, proofs, &verifier, &state, &options)
            })
        }
        Command::Monitor(a) => {
            let mut online = online(&a.key, &a.server, &a.state)?;
            online.witnesses = a.policy.load()?;
            monitor::monitor(&online, &ca(&a.ca)?, &a.identities, &a.expect_keys)
        }
        Command::Compare(a) => {
            let verifier = key(&a.key.log_key)?;
            let evidence_dir = a.state.path()?;
            let client = match &a.server.server {
                Some(_) => Some(a.server.client()?),
                None => None,
            };
            let given = match &a.proof {
                Some(p) => Some(sync::GivenProof(
                    wire::parse_proof_file(&error::read_file(p)?)?.proof,
                )),
                None => None,
            };
            let proofs: Option<&dyn sync::ProofSource> = match (&client, &given) {
                (Some(c), _) => Some(c),
                (None, Some(g)) => Some(g),
                (None, None) => None,
            };
            offline::compare(&verifier, &a.a, &a.b, proofs, Path::new(&evidence_dir))
        }
        Command::Enroll(a) => {
            let (online, ca) = a.trust.open_with(&a.policy)?;
            enroll::enroll(&online, &ca, &a.identity, &a.token, &a.key_out, &a.out)
        }
        Command::Rotate(a) => {
            let (online, ca) = a.trust.open_with(&a.policy)?;
            enroll::rotate(
                &online,
                &ca,
                &a.current_key,
                &a.credential,
                &a.key_out,
                &a.out,
            )
        }
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Checkpoint(CheckpointCmd::Verify { .. }) => "checkpoint verify",
        Command::Checkpoint(CheckpointCmd::Fetch { .. }) => "checkpoint fetch",
        Command::Inclusion(_) => "inclusion verify",
        Command::Consistency(_) => "consistency verify",
        Command::Bundle(_) => "bundle verify",
        Command::Fork(_) => "fork verify",
        Command::Credential(_) => "credential",
        Command::Lookup(_) => "lookup",
        Command::Validate(_) => "validate",
        Command::Audit(_) => "audit",
        Command::Monitor(_) => "monitor",
        Command::Compare(_) => "compare",
        Command::Enroll(_) => "enroll",
        Command::Rotate(_) => "rotate",
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = run(&cli.command, cli.json);
    let code: ExitCode = output::emit(command_name(&cli.command), result, cli.json);
    std::process::ExitCode::from(code as u8)
}
