//! The findings of an import: every setting of the source file that did not come across
//! unchanged, by name. Findings never quote a secret.

use std::fmt;

/// What happened to a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingKind {
    /// The setting has no equivalent in Roam's profile; it was left out.
    Unsupported,
    /// The setting was taken, but changed or partly dropped (`detail` says how).
    Lossy,
    /// Something Roam's profile needs that the file does not carry; the user must add it.
    Missing,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsupported => "unsupported",
            Self::Lossy => "lossy",
            Self::Missing => "missing",
        }
    }
}

/// One setting that did not come across unchanged. `Display`: `kind: setting: detail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    /// The setting's name in the source format (`split-tunneling.excluded`,
    /// `IKESecurityAssociationParameters.EncryptionAlgorithm`), or for `Missing` the profile
    /// key (`auth.password`).
    pub setting: String,
    pub detail: String,
}

impl Finding {
    pub fn new(kind: FindingKind, setting: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind,
            setting: setting.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.setting)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The findings of one import, in the order they were made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings(Vec<Finding>);

impl Findings {
    pub fn unsupported(&mut self, setting: impl Into<String>, detail: impl Into<String>) {
        self.0
            .push(Finding::new(FindingKind::Unsupported, setting, detail));
    }
    pub fn lossy(&mut self, setting: impl Into<String>, detail: impl Into<String>) {
        self.0
            .push(Finding::new(FindingKind::Lossy, setting, detail));
    }
    pub fn missing(&mut self, key: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Finding::new(FindingKind::Missing, key, detail));
    }
    /// Keeps only the findings `keep` approves (e.g. a missing value the user has supplied).
    pub fn retain(&mut self, keep: impl FnMut(&Finding) -> bool) {
        self.0.retain(keep);
    }
    pub fn iter(&self) -> impl Iterator<Item = &Finding> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Whether anything the profile needs is missing.
    pub fn has_missing(&self) -> bool {
        self.0.iter().any(|f| f.kind == FindingKind::Missing)
    }
    pub fn into_vec(self) -> Vec<Finding> {
        self.0
    }
}
