//! openmls glue: building an MLS identity from an AS credential, and the checks an
//! application runs at each point where openmls hands it a credential to trust.
//!
//! openmls checks signatures; it never decides who a credential belongs to ("the
//! [`Credential`] must be checked by an authentication server and the application"). Every
//! function here maps an openmls object to (identity, signature key) pairs — identity from the
//! [`BasicCredential`], key from the leaf node — and asks the [`AsValidator`]:
//!
//! - [`validate_key_package`]: before `MlsGroup::add_members` (and before committing an Add
//!   proposal someone else made);
//! - [`validate_members`]: on joining, between `StagedWelcome::new_from_welcome` and
//!   `StagedWelcome::into_group` (every other leaf of the ratchet tree), and whenever the
//!   application re-checks its group (e.g. before its next commit);
//! - [`validate_staged_commit`]: after `MlsGroup::process_message` returns a
//!   `StagedCommitMessage` and before `MlsGroup::merge_staged_commit` (the committer, its new
//!   leaf from the update path, every added member and every updated leaf).
//!
//! The X.509 credential the AS issued rides along in a private-use leaf node extension
//! ([`AS_CERTIFICATE_EXTENSION`]); when present it must be the very certificate of the current
//! credential the identity's proven state holds for the leaf's key. The directory, not the
//! extension, is what is trusted: a certificate of a key rotated away or revoked is refused
//! with its key, however valid it still is under the CA.

use ed25519_dalek::SigningKey;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;

use crate::validator::{AsValidator, Proof, Refusal};

/// The ciphersuite: X25519, AES-128-GCM, SHA-256, and Ed25519 signatures — the AS's key type,
/// so the key the AS certified is the MLS signature key itself.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Private-use leaf node extension type carrying the DER of the AS's X.509 credential.
pub const AS_CERTIFICATE_EXTENSION: u16 = 0xff0a;

/// Leaf capabilities: this ciphersuite, basic credentials, and the certificate extension.
pub fn capabilities() -> Capabilities {
    Capabilities::new(
        None,
        Some(&[CIPHERSUITE]),
        Some(&[ExtensionType::Unknown(AS_CERTIFICATE_EXTENSION)]),
        None,
        Some(&[CredentialType::Basic]),
    )
}

/// A client's MLS identity: its signer (the AS-certified Ed25519 key), its credential with
/// that key, and the leaf extensions carrying its certificate.
pub struct MlsIdentity {
    /// The identity string (also the BasicCredential's identity bytes).
    pub identity: String,
    /// The signer, made from the same Ed25519 key the AS certified.
    pub signer: SignatureKeyPair,
    /// BasicCredential(identity) with the signature public key.
    pub credential_with_key: CredentialWithKey,
    /// The leaf node extensions: the X.509 credential from the AS.
    pub leaf_extensions: Extensions<LeafNode>,
}

impl MlsIdentity {
    /// The MLS identity of `identity` holding `key`, whose AS credential is `certificate_der`.
    pub fn new(
        identity: &str,
        key: &SigningKey,
        certificate_der: &[u8],
    ) -> Result<MlsIdentity, String> {
        let public = key.verifying_key().to_bytes().to_vec();
        let signer =
            SignatureKeyPair::from_raw(SignatureScheme::ED25519, key.to_bytes().to_vec(), public);
        let credential_with_key = CredentialWithKey {
            credential: BasicCredential::new(identity.as_bytes().to_vec()).into(),
            signature_key: signer.to_public_vec().into(),
        };
        let leaf_extensions = Extensions::single(Extension::Unknown(
            AS_CERTIFICATE_EXTENSION,
            UnknownExtension(certificate_der.to_vec()),
        ))
        .map_err(|e| format!("certificate extension: {e}"))?;
        Ok(MlsIdentity {
            identity: identity.to_owned(),
            signer,
            credential_with_key,
            leaf_extensions,
        })
    }

    /// A fresh KeyPackage for this identity.
    pub fn key_package(&self, provider: &impl OpenMlsProvider) -> Result<KeyPackageBundle, String> {
        KeyPackage::builder()
            .leaf_node_capabilities(capabilities())
            .leaf_node_extensions(self.leaf_extensions.clone())
            .build(
                CIPHERSUITE,
                provider,
                &self.signer,
                self.credential_with_key.clone(),
            )
            .map_err(|e| format!("key package: {e}"))
    }

    /// The configuration to create a group as this identity (ratchet tree in the Welcome).
    pub fn group_config(&self) -> Result<MlsGroupCreateConfig, String> {
        Ok(MlsGroupCreateConfig::builder()
            .ciphersuite(CIPHERSUITE)
            .capabilities(capabilities())
            .with_leaf_node_extensions(self.leaf_extensions.clone())
            .map_err(|e| format!("group config: {e}"))?
            .use_ratchet_tree_extension(true)
            .build())
    }
}

/// The configuration to join a group from a Welcome.
pub fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .build()
}

/// The AS identity a credential names: a BasicCredential whose identity is UTF-8.
pub fn identity_of(credential: &Credential) -> Result<String, Refusal> {
    let basic = BasicCredential::try_from(credential.clone()).map_err(|_| {
        Refusal::BadIdentity(format!(
            "{:?} credential, not a BasicCredential",
            credential.credential_type()
        ))
    })?;
    String::from_utf8(basic.identity().to_vec())
        .map_err(|_| Refusal::BadIdentity("identity is not UTF-8".into()))
}

/// Validates a credential and the signature key that goes with it.
pub fn validate_credential(
    validator: &AsValidator,
    credential: &Credential,
    signature_key: &[u8],
) -> Result<Proof, Refusal> {
    validator.validate(&identity_of(credential)?, signature_key)
}

/// Validates a leaf node: its credential and signature key through the AS, and, if it
/// carries the certificate extension, that the certificate is the one the identity's current
/// credential with this key holds.
pub fn validate_leaf_node(validator: &AsValidator, leaf: &LeafNode) -> Result<Proof, Refusal> {
    let proof = validate_credential(
        validator,
        leaf.credential(),
        leaf.signature_key().as_slice(),
    )?;
    if let Some(carried) = leaf.extensions().unknown(AS_CERTIFICATE_EXTENSION) {
        if carried.0 != proof.certificate_der {
            return Err(Refusal::BadProof(
                "the certificate carried in the leaf node is not the logged one".into(),
            ));
        }
    }
    Ok(proof)
}

/// Validates a KeyPackage (already signature-checked by `KeyPackageIn::validate`) before
/// adding its owner to a group.
pub fn validate_key_package(
    validator: &AsValidator,
    key_package: &KeyPackage,
) -> Result<Proof, Refusal> {
    validate_leaf_node(validator, key_package.leaf_node())
}

/// One check's subject and outcome.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked, e.g. `member 1 bob@example.com` or `committer 0 alice@example.com`.
    pub subject: String,
    /// The identity named (empty if none could be read).
    pub identity: String,
    /// The outcome.
    pub result: Result<Proof, Refusal>,
}

fn check(subject: &str, validator: &AsValidator, credential: &Credential, key: &[u8]) -> Check {
    let identity = identity_of(credential).unwrap_or_default();
    Check {
        subject: format!("{subject} {identity}"),
        identity,
        result: validate_credential(validator, credential, key),
    }
}

fn check_leaf(subject: &str, validator: &AsValidator, leaf: &LeafNode) -> Check {
    let identity = identity_of(leaf.credential()).unwrap_or_default();
    Check {
        subject: format!("{subject} {identity}"),
        identity,
        result: validate_leaf_node(validator, leaf),
    }
}

/// Validates every member except `own` (e.g. the ratchet tree of a `StagedWelcome`, or a
/// group's current members).
pub fn validate_members(
    validator: &AsValidator,
    members: impl Iterator<Item = Member>,
    own: LeafNodeIndex,
) -> Vec<Check> {
    members
        .filter(|m| m.index != own)
        .map(|m| {
            check(
                &format!("member {}", m.index.u32()),
                validator,
                &m.credential,
                &m.signature_key,
            )
        })
        .collect()
}

/// Validates what a received commit asks the group to trust, before merging it: the sender
/// (its current leaf in `group`), the sender's new leaf from the update path, each added
/// KeyPackage and each updated leaf. A commit from a sender that is neither a member nor a
/// new member joining by external commit is refused.
pub fn validate_staged_commit(
    validator: &AsValidator,
    group: &MlsGroup,
    sender: &Sender,
    staged: &StagedCommit,
) -> Vec<Check> {
    let mut checks = Vec::new();
    match sender {
        Sender::Member(index) => match group.public_group().leaf(*index) {
            Some(leaf) => checks.push(check_leaf(
                &format!("committer {}", index.u32()),
                validator,
                leaf,
            )),
            None => checks.push(Check {
                subject: format!("committer {}", index.u32()),
                identity: String::new(),
                result: Err(Refusal::BadIdentity("no such leaf in the group".into())),
            }),
        },
        Sender::NewMemberCommit => {}
        other => checks.push(Check {
            subject: format!("committer {other:?}"),
            identity: String::new(),
            result: Err(Refusal::BadIdentity(
                "commit from a sender that is not a member".into(),
            )),
        }),
    }
    if let Some(leaf) = staged.update_path_leaf_node() {
        checks.push(check_leaf("committer's new leaf", validator, leaf));
    }
    for add in staged.add_proposals() {
        checks.push(check_leaf(
            "added member",
            validator,
            add.add_proposal().key_package().leaf_node(),
        ));
    }
    for update in staged.update_proposals() {
        checks.push(check_leaf(
            "updated leaf",
            validator,
            update.update_proposal().leaf_node(),
        ));
    }
    checks
}
