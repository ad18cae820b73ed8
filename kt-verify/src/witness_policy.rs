//! Witness policies (C2SP tlog-policy, <https://c2sp.org/tlog-policy>) and the check that a
//! checkpoint is cosigned by a policy's quorum of witnesses (C2SP tlog-cosignature v1).
//!
//! A policy file is lines of items separated by spaces or tabs; blank lines and lines whose
//! first item starts with `#` are ignored:
//! - `log <vkey> [<url>]`: a log (a signed-note Ed25519 key, type 0x01) the policy accepts;
//! - `witness <name> <vkey> [<url>]`: a witness and its cosignature/v1 key (type 0x04);
//! - `group <name> all|any|<k> <member>...`: witnessed iff at least k of its n members (all:
//!   k = n, any: k = 1) are; members are witnesses or groups defined on earlier lines, each at
//!   most once, `none` never;
//! - `quorum <name|none>`: exactly one, naming a witness or group defined on an earlier line,
//!   or `none` (no cosignature required).
//!
//! Names are one namespace (witnesses and groups); `none` is reserved. Two log lines or two
//! witness lines with the same public key are rejected. The only control characters allowed
//! are tab and newline. [`WitnessPolicy::parse`] never panics: any other input is a
//! [`PolicyError`] naming the line. Limits: [`MAX_POLICY_BYTES`], and [`MAX_ENTRIES`] logs,
//! witnesses and groups each (the spec recommends supporting at least 32).
//!
//! Names are compared as exact strings; the file must be UTF-8 (the spec treats octets with
//! the high bit set as opaque, and a note key name is UTF-8 anyway).

use std::collections::{HashMap, HashSet};

use kt_log::checkpoint::{open_checkpoint, CheckpointError, VerifiedCheckpoint};
use kt_log::cosignature::{CosignatureError, CosignatureVerifier};
use kt_log::note::NoteVerifier;
use kt_log::verify::ProofError;
use kt_log::Hash;
use thiserror::Error;

/// Largest policy file accepted.
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// Most log, witness and group lines (each) a policy may have.
pub const MAX_ENTRIES: usize = 1024;

/// Why a policy file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file is larger than [`MAX_POLICY_BYTES`].
    #[error("witness policy is larger than {MAX_POLICY_BYTES} bytes")]
    TooLarge,
    /// A line is not one of the forms of the module documentation.
    #[error("witness policy line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// No `quorum` line.
    #[error("witness policy has no quorum line")]
    NoQuorum,
}

/// A log the policy accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLog {
    /// Its checkpoint signing key (the key name is the log's origin).
    pub verifier: NoteVerifier,
    /// Its URL, if the policy gives one.
    pub url: Option<String>,
}

/// A witness of the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWitness {
    /// Its name in the policy (used by groups and the quorum only).
    pub name: String,
    /// Its cosignature/v1 key; cosignature lines carry this key's name.
    pub verifier: CosignatureVerifier,
    /// Its URL (submission prefix), if the policy gives one.
    pub url: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    name: String,
    threshold: usize,
    members: Vec<Member>,
}

/// A parsed C2SP tlog-policy (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessPolicy {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: Vec<Group>,
    /// `None` is `quorum none`.
    quorum: Option<Member>,
    /// Every witness and group name (one namespace).
    names: HashMap<String, Member>,
}

fn line_error(line: usize, reason: impl Into<String>) -> PolicyError {
    PolicyError::Line {
        line,
        reason: reason.into(),
    }
}

impl WitnessPolicy {
    /// Parses a policy file (see the module documentation for the format).
    ///
    /// Guarantee: `Ok` only if every line is valid, every name is defined before it is used
    /// and defined once, every group has 1 ≤ k ≤ n distinct members, no two logs or two
    /// witnesses share a public key, and there is exactly one quorum line. Never panics.
    pub fn parse(text: &[u8]) -> Result<WitnessPolicy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge);
        }
        let line_of = |pos: usize| 1 + text[..pos].iter().filter(|&&b| b == b'\n').count();
        if let Some(pos) = text
            .iter()
            .position(|&b| b != b'\t' && b != b'\n' && (b < 0x20 || b == 0x7f))
        {
            return Err(line_error(line_of(pos), "control character"));
        }
        let text = std::str::from_utf8(text)
            .map_err(|e| line_error(line_of(e.valid_up_to()), "not UTF-8"))?;
        let mut policy = WitnessPolicy {
            logs: Vec::new(),
            witnesses: Vec::new(),
            groups: Vec::new(),
            quorum: None,
            names: HashMap::new(),
        };
        let mut quorum_seen = false;
        for (index, line) in text.split('\n').enumerate() {
            let n = index + 1;
            let items: Vec<&str> = line
                .split([' ', '\t'])
                .filter(|item| !item.is_empty())
                .collect();
            let Some(&keyword) = items.first() else {
                continue;
            };
            if keyword.starts_with('#') {
                continue;
            }
            match keyword {
                "log" => policy.parse_log(n, &items)?,
                "witness" => policy.parse_witness(n, &items)?,
                "group" => policy.parse_group(n, &items)?,
                "quorum" => {
                    if quorum_seen {
                        return Err(line_error(n, "a second quorum line"));
                    }
                    let [_, name] = items[..] else {
                        return Err(line_error(n, "expected `quorum <name|none>`"));
                    };
                    policy.quorum = if name == "none" {
                        None
                    } else {
                        Some(policy.lookup(name).ok_or_else(|| {
                            line_error(n, format!("quorum {name:?} is not defined above"))
                        })?)
                    };
                    quorum_seen = true;
                }
                other => return Err(line_error(n, format!("unknown keyword {other:?}"))),
            }
        }
        if !quorum_seen {
            return Err(PolicyError::NoQuorum);
        }
        Ok(policy)
    }

    fn lookup(&self, name: &str) -> Option<Member> {
        self.names.get(name).copied()
    }

    fn check_new_name(&self, n: usize, name: &str) -> Result<(), PolicyError> {
        if name == "none" {
            return Err(line_error(n, "the name \"none\" is reserved"));
        }
        if self.lookup(name).is_some() {
            return Err(line_error(n, format!("name {name:?} is defined twice")));
        }
        Ok(())
    }

    fn parse_log(&mut self, n: usize, items: &[&str]) -> Result<(), PolicyError> {
        let (vkey, url) = match items {
            [_, vkey] => (*vkey, None),
            [_, vkey, url] => (*vkey, Some((*url).to_owned())),
            _ => return Err(line_error(n, "expected `log <vkey> [<url>]`")),
        };
        if self.logs.len() >= MAX_ENTRIES {
            return Err(line_error(n, "too many logs"));
        }
        let verifier =
            NoteVerifier::parse(vkey).map_err(|e| line_error(n, format!("log key: {e}")))?;
        if self
            .logs
            .iter()
            .any(|l| l.verifier.public_key() == verifier.public_key())
        {
            return Err(line_error(n, "duplicate log (same public key)"));
        }
        self.logs.push(PolicyLog { verifier, url });
        Ok(())
    }

    fn parse_witness(&mut self, n: usize, items: &[&str]) -> Result<(), PolicyError> {
        let (name, vkey, url) = match items {
            [_, name, vkey] => (*name, *vkey, None),
            [_, name, vkey, url] => (*name, *vkey, Some((*url).to_owned())),
            _ => return Err(line_error(n, "expected `witness <name> <vkey> [<url>]`")),
        };
        self.check_new_name(n, name)?;
        if self.witnesses.len() >= MAX_ENTRIES {
            return Err(line_error(n, "too many witnesses"));
        }
        let verifier = CosignatureVerifier::parse(vkey)
            .map_err(|e| line_error(n, format!("witness {name:?} key: {e}")))?;
        if let Some(other) = self
            .witnesses
            .iter()
            .find(|w| w.verifier.public_key() == verifier.public_key())
        {
            return Err(line_error(
                n,
                format!(
                    "witness {name:?} has the public key of witness {:?}",
                    other.name
                ),
            ));
        }
        self.names
            .insert(name.to_owned(), Member::Witness(self.witnesses.len()));
        self.witnesses.push(PolicyWitness {
            name: name.to_owned(),
            verifier,
            url,
        });
        Ok(())
    }

    fn parse_group(&mut self, n: usize, items: &[&str]) -> Result<(), PolicyError> {
        let [_, name, threshold, members @ ..] = items else {
            return Err(line_error(
                n,
                "expected `group <name> all|any|<k> <member>...`",
            ));
        };
        self.check_new_name(n, name)?;
        if members.is_empty() {
            return Err(line_error(n, format!("group {name:?} has no members")));
        }
        if self.groups.len() >= MAX_ENTRIES {
            return Err(line_error(n, "too many groups"));
        }
        let mut resolved: Vec<Member> = Vec::with_capacity(members.len());
        let mut seen: HashSet<Member> = HashSet::with_capacity(members.len());
        for member in members {
            if *member == "none" {
                return Err(line_error(n, "\"none\" cannot be a group member"));
            }
            let m = self.lookup(member).ok_or_else(|| {
                line_error(n, format!("group member {member:?} is not defined above"))
            })?;
            if !seen.insert(m) {
                return Err(line_error(
                    n,
                    format!("group member {member:?} is listed twice"),
                ));
            }
            resolved.push(m);
        }
        let count = resolved.len();
        let threshold = match *threshold {
            "all" => count,
            "any" => 1,
            k if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => k
                .parse::<usize>()
                .ok()
                .filter(|k| (1..=count).contains(k))
                .ok_or_else(|| {
                    line_error(
                        n,
                        format!("group {name:?} threshold {k} is not between 1 and {count}"),
                    )
                })?,
            other => {
                return Err(line_error(
                    n,
                    format!("group threshold {other:?} is not all, any or a number"),
                ))
            }
        };
        self.names
            .insert((*name).to_owned(), Member::Group(self.groups.len()));
        self.groups.push(Group {
            name: (*name).to_owned(),
            threshold,
            members: resolved,
        });
        Ok(())
    }

    /// The logs the policy lists (possibly none: then the log is known from context).
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The witnesses the policy lists.
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// The quorum's name, `none` if no cosignature is required.
    pub fn quorum_name(&self) -> &str {
        match self.quorum {
            None => "none",
            Some(m) => self.name_of(m),
        }
    }

    fn name_of(&self, m: Member) -> &str {
        match m {
            Member::Witness(i) => &self.witnesses[i].name,
            Member::Group(i) => &self.groups[i].name,
        }
    }

    /// Whether the policy accepts checkpoints of `log`: it lists no log, or lists this key
    /// (name and public key).
    pub fn accepts_log(&self, log: &NoteVerifier) -> bool {
        self.logs.is_empty()
            || self.logs.iter().any(|l| {
                l.verifier.name() == log.name() && l.verifier.public_key() == log.public_key()
            })
    }
}

/// A valid cosignature of a policy witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The witness's name in the policy.
    pub witness: String,
    /// The cosignature's key name.
    pub key_name: String,
    /// The cosignature's timestamp (POSIX seconds), as the witness signed it.
    pub timestamp: u64,
}

/// A group of the policy that is not satisfied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupShortfall {
    /// The group's name.
    pub group: String,
    /// How many of its members are witnessed.
    pub have: usize,
    /// How many must be.
    pub need: usize,
}

/// A checkpoint signed by the log and cosigned by the policy's quorum: made only by
/// [`verify_witnessed_checkpoint`] and [`check_witnessed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessedCheckpoint {
    checkpoint: VerifiedCheckpoint,
    cosignatures: Vec<Cosigned>,
}

impl WitnessedCheckpoint {
    /// The log-verified checkpoint.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
    /// Every valid cosignature by a policy witness (in policy order), needed for the quorum
    /// or not.
    pub fn cosignatures(&self) -> &[Cosigned] {
        &self.cosignatures
    }
    /// The checkpoint, for the checks that follow.
    pub fn into_checkpoint(self) -> VerifiedCheckpoint {
        self.checkpoint
    }
}

/// Why a checkpoint does not satisfy a witness policy.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The log's own signature or the checkpoint body failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The policy lists logs, and not this one.
    #[error("the witness policy does not list the log {log:?}")]
    LogNotInPolicy {
        /// The log's key name (origin).
        log: String,
    },
    /// A policy witness's cosignature line is present but does not verify (or is there
    /// twice): a forged or broken cosignature, never ignored.
    #[error("bad cosignature by witness {witness:?}: {reason}")]
    BadCosignature {
        /// The witness's name in the policy.
        witness: String,
        /// What is wrong with it.
        reason: CosignatureError,
    },
    /// The valid cosignatures do not satisfy the quorum.
    #[error("{}", quorum_message(quorum, missing, groups))]
    QuorumNotMet {
        /// The quorum's name.
        quorum: String,
        /// Witnesses that count towards the quorum and did not cosign (policy names).
        missing: Vec<String>,
        /// Groups that count towards the quorum and are not satisfied.
        groups: Vec<GroupShortfall>,
    },
}

fn quorum_message(quorum: &str, missing: &[String], groups: &[GroupShortfall]) -> String {
    let mut msg = format!("checkpoint is not cosigned by the witness quorum {quorum:?}");
    if !missing.is_empty() {
        msg.push_str(&format!("; missing cosignatures by {}", missing.join(", ")));
    }
    if !groups.is_empty() {
        let groups: Vec<String> = groups
            .iter()
            .map(|g| format!("{} ({} of {} needed)", g.group, g.have, g.need))
            .collect();
        msg.push_str(&format!("; groups not satisfied: {}", groups.join(", ")));
    }
    msg
}

/// A verified checkpoint's body and signature lines (a verified note is UTF-8 with a blank
/// line before its signatures).
fn body_and_lines(checkpoint: &VerifiedCheckpoint) -> Option<(&str, &str)> {
    let note = std::str::from_utf8(checkpoint.note()).ok()?;
    let split = note.rfind("\n\n")?;
    Some((&note[..split + 1], &note[split + 2..]))
}

/// The policy witnesses (by name) whose valid cosignatures are on both `a` and `b`, two
/// checkpoints of one log with the same size and different roots: each of them cosigned a
/// split view, which an honest witness never does (it cosigns only a checkpoint consistent
/// with the one it holds). Empty when the sizes differ or the roots are equal: for different
/// sizes a failed consistency proof convicts the log, not necessarily the witness.
///
/// Guarantee: a name is returned only if that witness's cosignature/v1 signature verifies over
/// each of the two bodies, so the two notes are evidence of its misbehaviour that anyone
/// holding the policy can re-check offline. Never panics.
pub fn cosigned_both(
    a: &VerifiedCheckpoint,
    b: &VerifiedCheckpoint,
    policy: &WitnessPolicy,
) -> Vec<String> {
    if a.size() != b.size() || a.root() == b.root() {
        return Vec::new();
    }
    let (Some((body_a, lines_a)), Some((body_b, lines_b))) = (body_and_lines(a), body_and_lines(b))
    else {
        return Vec::new();
    };
    policy
        .witnesses
        .iter()
        .filter(|w| {
            matches!(w.verifier.find(body_a, lines_a), Ok(Some(_)))
                && matches!(w.verifier.find(body_b, lines_b), Ok(Some(_)))
        })
        .map(|w| w.name.clone())
        .collect()
}

/// Verifies a signed checkpoint note against the log's key and a witness policy.
///
/// Guarantee: `Ok` only if (1) the note is a checkpoint validly signed by `log` with its
/// origin as the key name ([`open_checkpoint`]); (2) the policy lists no log or lists `log`;
/// (3) no line names a policy witness's key (name and key id) without being its one valid
/// cosignature/v1 Ed25519 signature over this checkpoint body; and (4) the valid
/// cosignatures satisfy the policy's quorum (always true for `quorum none`). Signature lines
/// by keys the policy does not know are ignored. Timestamps are returned, not judged (there
/// is no clock here). Never panics.
pub fn verify_witnessed_checkpoint(
    note: &[u8],
    log: &NoteVerifier,
    policy: &WitnessPolicy,
) -> Result<WitnessedCheckpoint, WitnessError> {
    let checkpoint = open_checkpoint(note, log)?;
    check_witnessed(checkpoint, log, policy)
}

/// [`verify_witnessed_checkpoint`] for a checkpoint already verified under `log` (for a
/// caller that got it from another verification, a bundle or a lookup). The same guarantee,
/// given that `checkpoint` was verified with `log`.
pub fn check_witnessed(
    checkpoint: VerifiedCheckpoint,
    log: &NoteVerifier,
    policy: &WitnessPolicy,
) -> Result<WitnessedCheckpoint, WitnessError> {
    if !policy.accepts_log(log) || checkpoint.checkpoint().origin != log.name() {
        return Err(WitnessError::LogNotInPolicy {
            log: log.name().to_owned(),
        });
    }
    let (body, lines) =
        body_and_lines(&checkpoint).ok_or(WitnessError::Checkpoint(CheckpointError::Note(
            kt_log::note::NoteError::Malformed("no blank line before signatures"),
        )))?;

    let mut cosigned: Vec<bool> = Vec::with_capacity(policy.witnesses.len());
    let mut cosignatures = Vec::new();
    for w in &policy.witnesses {
        match w.verifier.find(body, lines) {
            Ok(Some(timestamp)) => {
                cosigned.push(true);
                cosignatures.push(Cosigned {
                    witness: w.name.clone(),
                    key_name: w.verifier.name().to_owned(),
                    timestamp,
                });
            }
            Ok(None) => cosigned.push(false),
            Err(reason) => {
                return Err(WitnessError::BadCosignature {
                    witness: w.name.clone(),
                    reason,
                })
            }
        }
    }
    // Groups refer only to earlier definitions: one pass in order evaluates them all.
    let witnessed = |m: Member, groups: &[(usize, bool)]| match m {
        Member::Witness(i) => cosigned[i],
        Member::Group(i) => groups[i].1,
    };
    let mut groups: Vec<(usize, bool)> = Vec::with_capacity(policy.groups.len());
    for g in &policy.groups {
        let have = g.members.iter().filter(|&&m| witnessed(m, &groups)).count();
        groups.push((have, have >= g.threshold));
    }
    let Some(quorum) = policy.quorum else {
        return Ok(WitnessedCheckpoint {
            checkpoint,
            cosignatures,
        });
    };
    if witnessed(quorum, &groups) {
        return Ok(WitnessedCheckpoint {
            checkpoint,
            cosignatures,
        });
    }
    // Name what is missing: the witnesses and groups the quorum depends on, not satisfied.
    let mut needed_w = vec![false; policy.witnesses.len()];
    let mut needed_g = vec![false; policy.groups.len()];
    match quorum {
        Member::Witness(i) => needed_w[i] = true,
        Member::Group(i) => needed_g[i] = true,
    }
    for (i, g) in policy.groups.iter().enumerate().rev() {
        if needed_g[i] {
            for m in &g.members {
                match *m {
                    Member::Witness(j) => needed_w[j] = true,
                    Member::Group(j) => needed_g[j] = true,
                }
            }
        }
    }
    let missing = policy
        .witnesses
        .iter()
        .enumerate()
        .filter(|&(i, _)| needed_w[i] && !cosigned[i])
        .map(|(_, w)| w.name.clone())
        .collect();
    let short = policy
        .groups
        .iter()
        .enumerate()
        .filter(|&(i, _)| needed_g[i] && !groups[i].1)
        .map(|(i, g)| GroupShortfall {
            group: g.name.clone(),
            have: groups[i].0,
            need: g.threshold,
        })
        .collect();
    Err(WitnessError::QuorumNotMet {
        quorum: policy.quorum_name().to_owned(),
        missing,
        groups: short,
    })
}

/// Why a checkpoint is not covered by a cosigned one ([`check_covered`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CoverError {
    /// The cosigned checkpoint does not satisfy the policy.
    #[error("the cosigned checkpoint: {0}")]
    Witnessed(#[from] WitnessError),
    /// The cosigned checkpoint is older than the one it should cover.
    #[error("the cosigned checkpoint (size {cosigned}) is older than the checkpoint (size {checkpoint})")]
    Older {
        /// The checkpoint's size.
        checkpoint: u64,
        /// The cosigned checkpoint's size.
        cosigned: u64,
    },
    /// The consistency proof between them fails: a fork, or a bad proof.
    #[error("the checkpoint is not consistent with the cosigned one: {0}")]
    Inconsistent(ProofError),
}

/// Accepts `checkpoint` (verified under `log`, signed by the log alone, as issuance and
/// lookup answers carry it) under `policy` through a later checkpoint the quorum cosigned:
/// `cosigned_note`, which `proof` shows extends it.
///
/// Guarantee: `Ok` only if `cosigned_note` satisfies [`verify_witnessed_checkpoint`] for
/// `log` and `policy`, is at least as large as `checkpoint`, and `proof` is a valid RFC 9162
/// consistency proof from `checkpoint` to it (for equal sizes: empty, with equal roots). So
/// the quorum's witnesses vouch for a log that contains `checkpoint`'s tree: a split view
/// shown to this client would have to be cosigned by them. Never panics.
pub fn check_covered(
    checkpoint: &VerifiedCheckpoint,
    cosigned_note: &[u8],
    proof: &[Hash],
    log: &NoteVerifier,
    policy: &WitnessPolicy,
) -> Result<WitnessedCheckpoint, CoverError> {
    let cosigned = verify_witnessed_checkpoint(cosigned_note, log, policy)?;
    if cosigned.checkpoint().size() < checkpoint.size() {
        return Err(CoverError::Older {
            checkpoint: checkpoint.size(),
            cosigned: cosigned.checkpoint().size(),
        });
    }
    checkpoint
        .verify_extended_by(cosigned.checkpoint(), proof)
        .map_err(CoverError::Inconsistent)?;
    Ok(cosigned)
}
