//! `mls-demo`: Alice, Bob and Charlie form an openmls group with credentials from the AS, and
//! every member validates every other member through the AS (signed checkpoint, consistency
//! with and not older than the saved one, the identity's complete state proven in the
//! directory) before accepting a KeyPackage, a Welcome or a commit. Then a forged KeyPackage
//! for Bob is refused, Charlie is revoked and removed (Bob and Charlie check the commit that
//! removes him before merging it), and Bob rotates his key: his old key is no longer in his
//! complete current set, and Alice refuses it.
//!
//! Prints each step; exits 0 only if every expected acceptance and refusal happened, 1 if
//! one did not, 2 if the scenario could not run (network, files, openmls errors).

use std::path::PathBuf;
use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::Parser;
use ed25519_dalek::SigningKey;
use kt_log::note::NoteVerifier;
use kt_protocol::directory::vrf::VrfPublicKey;
use kt_protocol::entry::Serial;
use kt_verify::credential::Ca;
use kt_verify::witness_policy::WitnessPolicy;
use mls_demo::as_api;
use mls_demo::https::HttpsClient;
use mls_demo::mls::{self, Check, MlsIdentity};
use mls_demo::validator::{self, AsValidator, Proof, Refusal};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

/// Runs the MLS scenario against a running AS.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Base URL of the AS.
    #[arg(long, env = "AS_SERVER", default_value = "https://127.0.0.1:8443")]
    server: String,
    /// The server's TLS certificate (or its CA), PEM: the only certificate trusted.
    #[arg(long, env = "AS_TLS_CA", default_value = "as-data/tls-cert.pem")]
    tls_ca: PathBuf,
    /// The log's note verifier key (`name+id+base64`, as in <data>/log-key.pub).
    #[arg(long, env = "AS_LOG_KEY", default_value = "as-data/log-key.pub")]
    log_key: PathBuf,
    /// The directory's VRF public key (base64, as in <data>/vrf-key.pub) [default:
    /// `vrf-key.pub` beside the log key]. Never fetched from the AS.
    #[arg(long, env = "AS_VRF_KEY")]
    vrf_key: Option<PathBuf>,
    /// The CA certificate (PEM or DER, as in <data>/ca-cert.pem) that must have signed every
    /// credential and the CRL.
    #[arg(long, env = "AS_CA", default_value = "as-data/ca-cert.pem")]
    ca: PathBuf,
    /// A C2SP tlog-policy file: every checkpoint a member believes must be cosigned by its
    /// quorum of witnesses [default: the log's signature suffices].
    #[arg(long, env = "AS_WITNESS_POLICY")]
    witness_policy: Option<PathBuf>,
    /// File holding the admin token (to enroll and revoke).
    #[arg(long, env = "AS_ADMIN_TOKEN_FILE")]
    admin_token_file: PathBuf,
    /// Domain of the demo identities [default: a fresh `demo-<random>.example`, so that runs
    /// against one server do not collide (a revoked identity cannot be enrolled again)].
    #[arg(long)]
    domain: Option<String>,
}

/// An identity whose validation must be refused, and the refusal expected.
type ExpectedRefusal<'a> = (&'a str, fn(&Refusal) -> bool);

/// Counts expectations met and missed, and prints each.
#[derive(Default)]
struct Tally {
    met: usize,
    missed: Vec<String>,
}

impl Tally {
    fn expect(&mut self, met: bool, line: String) {
        if met {
            self.met += 1;
            println!("  [ok] {line}");
        } else {
            println!("  [UNEXPECTED] {line}");
            self.missed.push(line);
        }
    }

    fn expect_accept(&mut self, who: &str, what: &str, result: &Result<Proof, Refusal>) {
        match result {
            Ok(p) => self.expect(
                true,
                format!("ACCEPTED {who} validates {what}: {}", proof(p)),
            ),
            Err(e) => self.expect(false, format!("REFUSED {who} validates {what}: {e}")),
        }
    }

    fn expect_refuse(
        &mut self,
        who: &str,
        what: &str,
        result: &Result<Proof, Refusal>,
        expected: fn(&Refusal) -> bool,
    ) {
        match result {
            Ok(p) => self.expect(
                false,
                format!("ACCEPTED {who} validates {what}: {}", proof(p)),
            ),
            Err(e) => self.expect(
                expected(e),
                format!("REFUSED {who} validates {what}: {e} ({e:?})"),
            ),
        }
    }

    fn expect_checks(&mut self, who: &str, checks: &[Check], refused: &[ExpectedRefusal<'_>]) {
        for c in checks {
            match refused.iter().find(|(id, _)| *id == c.identity) {
                Some((_, expected)) => self.expect_refuse(who, &c.subject, &c.result, *expected),
                None => self.expect_accept(who, &c.subject, &c.result),
            }
        }
    }
}

fn proof(p: &Proof) -> String {
    format!(
        "version {} of its state ({} current credential{}), proven in the map of checkpoint of size {} ({}); serial {}",
        p.version,
        p.current_credentials,
        if p.current_credentials == 1 { "" } else { "s" },
        p.checkpoint_size,
        p.consistency,
        p.serial
    )
}

/// What every member trusts: the log key, the directory's VRF key, the CA, and optionally a
/// witness policy. None of it comes from the AS.
struct Trust {
    log_key: NoteVerifier,
    vrf_key: VrfPublicKey,
    ca: Ca,
    witness_policy: Option<WitnessPolicy>,
}

impl Trust {
    /// A fresh validator (no saved checkpoint) of the AS at `client`.
    fn validator(&self, client: &HttpsClient) -> AsValidator {
        let v = AsValidator::new(
            client.clone(),
            self.log_key.clone(),
            self.vrf_key.clone(),
            self.ca.clone(),
        );
        match &self.witness_policy {
            Some(policy) => v.with_witness_policy(policy.clone()),
            None => v,
        }
    }
}

/// One demo participant: an AS credential, the same key as MLS signer, its own provider and
/// its own validator (with its own saved checkpoint).
struct Client {
    identity: String,
    /// The AS-certified key (also the MLS signer's), kept to sign a rotation.
    key: SigningKey,
    mls: MlsIdentity,
    provider: OpenMlsRustCrypto,
    validator: AsValidator,
    group: Option<MlsGroup>,
}

impl Client {
    fn group(&self) -> Result<&MlsGroup, String> {
        self.group
            .as_ref()
            .ok_or_else(|| format!("{} is in no group", self.identity))
    }

    /// Its group (mutable), provider and signer, borrowed together.
    fn parts(&mut self) -> Result<(&mut MlsGroup, &OpenMlsRustCrypto, &SignatureKeyPair), String> {
        let group = self
            .group
            .as_mut()
            .ok_or_else(|| format!("{} is in no group", self.identity))?;
        Ok((group, &self.provider, &self.mls.signer))
    }

    /// Validates every other member of its group through the AS.
    fn check_members(&mut self) -> Result<Vec<Check>, String> {
        let group = self
            .group
            .as_ref()
            .ok_or_else(|| format!("{} is in no group", self.identity))?;
        Ok(mls::validate_members(
            &self.validator,
            group.members(),
            group.own_leaf_index(),
        ))
    }
}

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn random_domain() -> Result<String, String> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(err("random"))?;
    Ok(format!("demo-{}.example", hex_lower(&bytes)))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Processes an MLS message (as bytes from the delivery service) and returns its content.
fn receive(client: &mut Client, bytes: &[u8]) -> Result<ProcessedMessage, String> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(err("decode message"))?;
    let protocol = message
        .try_into_protocol_message()
        .map_err(err("not a protocol message"))?;
    let provider = &client.provider;
    let group = client
        .group
        .as_mut()
        .ok_or_else(|| format!("{} is in no group", client.identity))?;
    group
        .process_message(provider, protocol)
        .map_err(err("process message"))
}

fn send(client: &mut Client, text: &str) -> Result<Vec<u8>, String> {
    let provider = &client.provider;
    let signer = &client.mls.signer;
    let group = client
        .group
        .as_mut()
        .ok_or_else(|| format!("{} is in no group", client.identity))?;
    group
        .create_message(provider, signer, text.as_bytes())
        .map_err(err("create message"))?
        .to_bytes()
        .map_err(err("encode message"))
}

fn expect_text(
    tally: &mut Tally,
    who: &str,
    processed: Result<ProcessedMessage, String>,
    text: &str,
) {
    match processed.map(ProcessedMessage::into_content) {
        Ok(ProcessedMessageContent::ApplicationMessage(m)) => {
            let got = m.into_bytes();
            tally.expect(
                got == text.as_bytes(),
                format!("{who} reads {:?}", String::from_utf8_lossy(&got)),
            );
        }
        Ok(_) => tally.expect(false, format!("{who} got something else than a message")),
        Err(e) => tally.expect(false, format!("{who} cannot read the message: {e}")),
    }
}

fn enroll_and_issue(
    admin: &HttpsClient,
    admin_token: &str,
    trust: &Trust,
    identities: &[String],
    tally: &mut Tally,
) -> Result<Vec<Client>, String> {
    step("1. The admin enrolls alice, bob and charlie (POST /v1/admin/enrollments)");
    let names: Vec<&str> = identities.iter().map(String::as_str).collect();
    let tokens = as_api::enroll(admin, admin_token, &names)?;
    println!("  enrolled {}", names.join(", "));

    step("2. Each generates an Ed25519 key, obtains an AS credential with a proof of possession, and uses that key as its MLS signature key");
    let mut clients = Vec::new();
    for (identity, token) in identities.iter().zip(&tokens) {
        let key = as_api::new_key()?;
        let answer = as_api::issue(admin, identity, token, &key)?;
        // The answer proves the credential in the identity's new state; the client keeps its
        // checkpoint, so that it never believes an older state afterwards.
        let bundle =
            as_api::verify_issued(&answer, &key, &trust.log_key, &trust.vrf_key, &trust.ca)?;
        println!(
            "  {identity}: credential serial {}, proven in version {} of its state in checkpoint of size {}, key {}",
            answer.serial,
            bundle.identity.state.as_ref().map_or(0, |s| s.record.version),
            bundle.identity.checkpoint.size(),
            B64.encode(key.verifying_key().as_bytes())
        );
        let validator = trust
            .validator(admin)
            .with_checkpoint(bundle.identity.checkpoint.clone());
        // Each client checks its own credential through the directory before using it.
        let own = validator.validate(identity, key.verifying_key().as_bytes());
        tally.expect_accept(identity, "its own credential", &own);
        let own = own.map_err(err("own credential"))?;
        clients.push(new_client(identity, &key, &own.certificate_der, validator)?);
    }
    Ok(clients)
}

fn new_client(
    identity: &str,
    key: &SigningKey,
    certificate_der: &[u8],
    validator: AsValidator,
) -> Result<Client, String> {
    let mls = MlsIdentity::new(identity, key, certificate_der)?;
    let provider = OpenMlsRustCrypto::default();
    mls.signer
        .store(provider.storage())
        .map_err(err("store signer"))?;
    Ok(Client {
        identity: identity.to_owned(),
        key: key.clone(),
        mls,
        provider,
        validator,
        group: None,
    })
}

/// Receives a KeyPackage from the delivery service: openmls checks its signature, the AS
/// check says whose it is.
fn receive_key_package(
    receiver: &Client,
    bytes: &[u8],
) -> Result<(KeyPackage, Result<Proof, Refusal>), String> {
    let key_package = KeyPackageIn::tls_deserialize_exact(bytes)
        .map_err(err("decode key package"))?
        .validate(receiver.provider.crypto(), ProtocolVersion::Mls10)
        .map_err(err("key package signature"))?;
    let result = mls::validate_key_package(&receiver.validator, &key_package);
    Ok((key_package, result))
}

fn publish_key_package(client: &Client) -> Result<Vec<u8>, String> {
    client
        .mls
        .key_package(&client.provider)?
        .key_package()
        .tls_serialize_detached()
        .map_err(err("encode key package"))
}

fn is_not_logged(r: &Refusal) -> bool {
    matches!(r, Refusal::NotLogged)
}
fn is_unknown(r: &Refusal) -> bool {
    matches!(r, Refusal::UnknownIdentity)
}
fn is_revoked(r: &Refusal) -> bool {
    matches!(r, Refusal::Revoked)
}

/// Reads the trust anchors: the log key, the VRF key (beside it by default), the CA and the
/// witness policy, all from files.
fn read_trust(args: &Args) -> Result<Trust, String> {
    let log_key = validator::read_log_key(&args.log_key)?;
    let vrf_path = args
        .vrf_key
        .clone()
        .unwrap_or_else(|| validator::vrf_key_beside(&args.log_key));
    let vrf_key = validator::read_vrf_key(&vrf_path)?;
    let ca_bytes = std::fs::read(&args.ca).map_err(|e| format!("{}: {e}", args.ca.display()))?;
    let ca = Ca::from_bytes(&ca_bytes).map_err(|e| format!("{}: {e}", args.ca.display()))?;
    let witness_policy = match &args.witness_policy {
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(WitnessPolicy::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    Ok(Trust {
        log_key,
        vrf_key,
        ca,
        witness_policy,
    })
}

fn run(args: &Args) -> Result<Tally, String> {
    let pem = std::fs::read(&args.tls_ca).map_err(|e| format!("{}: {e}", args.tls_ca.display()))?;
    let client = HttpsClient::new(&args.server, &pem)?;
    let trust = read_trust(args)?;
    let admin_token = std::fs::read_to_string(&args.admin_token_file)
        .map_err(|e| format!("{}: {e}", args.admin_token_file.display()))?
        .trim()
        .to_owned();
    let domain = match &args.domain {
        Some(d) => d.clone(),
        None => random_domain()?,
    };
    let identities: Vec<String> = ["alice", "bob", "charlie"]
        .iter()
        .map(|n| format!("{n}@{domain}"))
        .collect();
    let mut tally = Tally::default();
    println!(
        "AS {} (log {}), identities under {domain}",
        args.server,
        trust.log_key.name()
    );

    let clients = enroll_and_issue(&client, &admin_token, &trust, &identities, &mut tally)?;
    let [mut alice, mut bob, mut charlie]: [Client; 3] = clients
        .try_into()
        .map_err(|_| "three clients".to_string())?;

    step("3. Alice creates a group");
    let config = alice.mls.group_config()?;
    alice.group = Some(
        MlsGroup::new(
            &alice.provider,
            &alice.mls.signer,
            &config,
            alice.mls.credential_with_key.clone(),
        )
        .map_err(err("create group"))?,
    );
    println!("  group created by {}", alice.identity);

    step(
        "4. Bob and Charlie publish KeyPackages; Alice validates each through the AS before adding",
    );
    let mut to_add = Vec::new();
    for joiner in [&bob, &charlie] {
        let (key_package, result) = receive_key_package(&alice, &publish_key_package(joiner)?)?;
        let what = format!("KeyPackage of {}", joiner.identity);
        tally.expect_accept(&alice.identity, &what, &result);
        if result.is_ok() {
            to_add.push(key_package);
        }
    }
    let (_commit, welcome, _info) = alice
        .group
        .as_mut()
        .ok_or("no group")?
        .add_members(&alice.provider, &alice.mls.signer, &to_add)
        .map_err(err("add members"))?;
    let (group, provider, _) = alice.parts()?;
    group
        .merge_pending_commit(provider)
        .map_err(err("merge add"))?;
    println!(
        "  Alice added {} members; group has {}",
        to_add.len(),
        alice.group()?.members().count()
    );
    let welcome = welcome.to_bytes().map_err(err("encode welcome"))?;

    step("5. Bob and Charlie receive the Welcome and validate every other member of the ratchet tree before accepting");
    for joiner in [&mut bob, &mut charlie] {
        let message =
            MlsMessageIn::tls_deserialize_exact(&welcome).map_err(err("decode welcome"))?;
        let MlsMessageBodyIn::Welcome(w) = message.extract() else {
            return Err("not a welcome".into());
        };
        let staged =
            StagedWelcome::new_from_welcome(&joiner.provider, &mls::join_config(), w, None)
                .map_err(err("stage welcome"))?;
        let checks =
            mls::validate_members(&joiner.validator, staged.members(), staged.own_leaf_index());
        tally.expect_checks(&joiner.identity, &checks, &[]);
        if checks.iter().all(|c| c.result.is_ok()) {
            joiner.group = Some(staged.into_group(&joiner.provider).map_err(err("join"))?);
            println!("  {} joined", joiner.identity);
        } else {
            println!("  {} refuses the Welcome", joiner.identity);
        }
    }

    step("6. They exchange application messages");
    let hello = "hello from alice";
    let bytes = send(&mut alice, hello)?;
    for reader in [&mut bob, &mut charlie] {
        let who = reader.identity.clone();
        expect_text(&mut tally, &who, receive(reader, &bytes), hello);
    }
    let reply = "hi alice, bob here";
    let bytes = send(&mut bob, reply)?;
    for reader in [&mut alice, &mut charlie] {
        let who = reader.identity.clone();
        expect_text(&mut tally, &who, receive(reader, &bytes), reply);
    }

    step("7. (a) A KeyPackage claiming to be Bob, with a key the AS never logged, is refused");
    let mallory_key = as_api::new_key()?;
    let bob_cert = bob
        .validator
        .validate(&bob.identity, &bob.mls.signer.to_public_vec())
        .map_err(err("bob"))?
        .certificate_der;
    // Mallory copies Bob's (public) certificate and names Bob, but signs with her own key.
    let forged = new_client(
        &bob.identity,
        &mallory_key,
        &bob_cert,
        trust.validator(&client),
    )?;
    let (_, result) = receive_key_package(&alice, &publish_key_package(&forged)?)?;
    println!("  openmls accepts its signature (it is self-signed by the forged key)");
    tally.expect_refuse(
        &alice.identity,
        &format!("forged KeyPackage claiming {}", bob.identity),
        &result,
        is_not_logged,
    );
    let dave = new_client(
        &format!("dave@{domain}"),
        &mallory_key,
        &bob_cert,
        trust.validator(&client),
    )?;
    let (_, result) = receive_key_package(&alice, &publish_key_package(&dave)?)?;
    tally.expect_refuse(
        &alice.identity,
        &format!("KeyPackage of never-enrolled {}", dave.identity),
        &result,
        is_unknown,
    );

    step("8. (b) The admin revokes charlie (POST /v1/admin/identities/.../revoke)");
    let revoked =
        as_api::revoke_identity(&client, &admin_token, &charlie.identity, "keyCompromise")?;
    let state = as_api::verify_revoked(&revoked, true, &trust.log_key, &trust.vrf_key)?;
    println!(
        "  credentials revoked: {}; the answer proves version {} of charlie's state, revoked with no current credential, in checkpoint of size {}",
        revoked.revoked.join(", "),
        state.state.as_ref().map_or(0, |s| s.record.version),
        state.checkpoint.size()
    );

    step("9. Before the next commit every member re-validates the others (checkpoints proven consistent with the saved ones)");
    let charlie_id = charlie.identity.clone();
    let revoked_charlie: [ExpectedRefusal<'_>; 1] = [(&charlie_id, is_revoked)];
    for member in [&mut alice, &mut bob] {
        let checks = member.check_members()?;
        let who = member.identity.clone();
        tally.expect_checks(&who, &checks, &revoked_charlie);
    }
    let checks = charlie.check_members()?;
    tally.expect_checks(&charlie_id, &checks, &[]);

    step("10. Charlie, unaware, commits a self-update: Alice and Bob validate the committer and refuse to merge it");
    let charlie_commit = {
        let provider = &charlie.provider;
        let signer = &charlie.mls.signer;
        charlie
            .group
            .as_mut()
            .ok_or("charlie has no group")?
            .self_update(provider, signer, LeafNodeParameters::default())
            .map_err(err("charlie self-update"))?
            .into_commit()
            .to_bytes()
            .map_err(err("encode commit"))?
    };
    for member in [&mut alice, &mut bob] {
        let processed = receive(member, &charlie_commit)?;
        let sender = processed.sender().clone();
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err("expected a commit".into());
        };
        let checks =
            mls::validate_staged_commit(&member.validator, member.group()?, &sender, &staged);
        let who = member.identity.clone();
        tally.expect_checks(&who, &checks, &revoked_charlie);
        if checks.iter().all(|c| c.result.is_ok()) {
            let (group, provider, _) = member.parts()?;
            group
                .merge_staged_commit(provider, *staged)
                .map_err(err("merge"))?;
            println!("  {who} merged Charlie's commit");
        } else {
            println!("  {who} discards Charlie's commit");
        }
    }
    let (group, provider, _) = charlie.parts()?;
    group
        .clear_pending_commit(provider.storage())
        .map_err(err("clear pending commit"))?;

    step("11. Alice removes Charlie with a commit; Bob validates its sender (Alice) before merging it");
    let charlie_index = alice
        .group()?
        .members()
        .find(|m| mls::identity_of(&m.credential).ok().as_deref() == Some(charlie_id.as_str()))
        .map(|m| m.index)
        .ok_or("charlie is not in alice's group")?;
    let remove = {
        let provider = &alice.provider;
        let signer = &alice.mls.signer;
        let group = alice.group.as_mut().ok_or("alice has no group")?;
        let (commit, _welcome, _info) = group
            .remove_members(provider, signer, &[charlie_index])
            .map_err(err("remove charlie"))?;
        group
            .merge_pending_commit(provider)
            .map_err(err("merge remove"))?;
        commit.to_bytes().map_err(err("encode commit"))?
    };
    println!(
        "  Alice committed the removal of leaf {}",
        charlie_index.u32()
    );
    for member in [&mut bob, &mut charlie] {
        let processed = receive(member, &remove)?;
        let sender = processed.sender().clone();
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err("expected a commit".into());
        };
        let removes: Vec<LeafNodeIndex> = staged
            .remove_proposals()
            .map(|r| r.remove_proposal().removed())
            .collect();
        let who = member.identity.clone();
        tally.expect(
            removes == [charlie_index],
            format!("{who} sees the commit removes leaf {}", charlie_index.u32()),
        );
        let checks =
            mls::validate_staged_commit(&member.validator, member.group()?, &sender, &staged);
        tally.expect_checks(&who, &checks, &[]);
        if checks.iter().all(|c| c.result.is_ok()) {
            let (group, provider, _) = member.parts()?;
            group
                .merge_staged_commit(provider, *staged)
                .map_err(err("merge"))?;
            println!("  {who} merged the commit");
        }
    }
    tally.expect(
        !charlie.group()?.is_active(),
        format!("{charlie_id}'s group is no longer active"),
    );
    let members: Vec<String> = bob
        .group()?
        .members()
        .filter_map(|m| mls::identity_of(&m.credential).ok())
        .collect();
    tally.expect(
        members == [alice.identity.clone(), bob.identity.clone()],
        format!("group members now: {}", members.join(", ")),
    );

    step("12. Alice and Bob go on without Charlie");
    let after = "charlie is gone";
    let bytes = send(&mut alice, after)?;
    let who = bob.identity.clone();
    expect_text(&mut tally, &who, receive(&mut bob, &bytes), after);
    tally.expect(
        receive(&mut charlie, &bytes).is_err(),
        format!("{charlie_id} cannot read it"),
    );

    rotate_bob(&client, &trust, &alice, &bob, &mut tally)?;
    Ok(tally)
}

/// Step 13: Bob rotates his key. His old key leaves his complete current set, so Alice
/// refuses his leaf and a KeyPackage that still carry it — with his old certificate, which is
/// superseded, not on the CRL, and still within its validity — and accepts his new key.
fn rotate_bob(
    client: &HttpsClient,
    trust: &Trust,
    alice: &Client,
    bob: &Client,
    tally: &mut Tally,
) -> Result<(), String> {
    step("13. Bob rotates his key (POST /v1/credentials/rotate): Alice refuses his old key, no longer in his complete current set, and accepts the new one");
    let current = bob
        .validator
        .validate(&bob.identity, &bob.mls.signer.to_public_vec())
        .map_err(err("bob"))?;
    let serial = Serial::parse_hex(&current.serial).ok_or("bob's serial is not hex")?;
    let new_key = as_api::new_key()?;
    let rotated = as_api::rotate(client, &bob.identity, &serial, &bob.key, &new_key)?;
    let bundle = as_api::verify_issued(
        &rotated,
        &new_key,
        &trust.log_key,
        &trust.vrf_key,
        &trust.ca,
    )?;
    println!(
        "  {}: credential {} replaces {}, proven in version {} of his state in checkpoint of size {}; the old certificate is superseded, not on the CRL",
        bob.identity,
        rotated.serial,
        rotated.replaces.as_deref().unwrap_or("?"),
        bundle.identity.state.as_ref().map_or(0, |s| s.record.version),
        bundle.identity.checkpoint.size()
    );
    let bob_id = bob.identity.clone();
    let rotated_bob: [ExpectedRefusal<'_>; 1] = [(&bob_id, is_not_logged)];
    let group = alice.group()?;
    let checks = mls::validate_members(&alice.validator, group.members(), group.own_leaf_index());
    tally.expect_checks(&alice.identity, &checks, &rotated_bob);
    let (_, result) = receive_key_package(alice, &publish_key_package(bob)?)?;
    tally.expect_refuse(
        &alice.identity,
        &format!("KeyPackage of {bob_id} with his rotated-away key and old certificate"),
        &result,
        is_not_logged,
    );
    let new_bob = new_client(
        &bob.identity,
        &new_key,
        &bundle.binding.certificate,
        trust
            .validator(client)
            .with_checkpoint(bundle.identity.checkpoint.clone()),
    )?;
    let (_, result) = receive_key_package(alice, &publish_key_package(&new_bob)?)?;
    tally.expect_accept(
        &alice.identity,
        &format!("KeyPackage of {bob_id} with his new key"),
        &result,
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(tally) => {
            println!(
                "\nscenario: {} expectations met, {} missed",
                tally.met,
                tally.missed.len()
            );
            if tally.missed.is_empty() {
                println!("RESULT: PASS");
                ExitCode::SUCCESS
            } else {
                for m in &tally.missed {
                    println!("missed: {m}");
                }
                println!("RESULT: FAIL");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            println!("RESULT: ERROR");
            ExitCode::from(2)
        }
    }
}
