//! What a run trains with: the `[loss]` table of its config, tagged by `kind`, and the
//! changes the command line or an overrides file make to it.
use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

/// The training objective's kind (`--loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// α · LA-CE + β · BCL (class-averaging and class-complement as configured).
    Bcl,
    /// α · LA-CE + β · SupCon (BCL with both switches off).
    Supcon,
    /// Logit-adjusted cross-entropy on view 0 only.
    La,
    /// Plain cross-entropy on view 0 only.
    Ce,
}

impl LossKind {
    /// The training views a step uses of each sample: view 0 for the classifier, views 1
    /// and 2 for the contrastive term.
    pub fn views(self) -> usize {
        match self {
            LossKind::Bcl | LossKind::Supcon => 3,
            LossKind::La | LossKind::Ce => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LossKind::Bcl => "bcl",
            LossKind::Supcon => "supcon",
            LossKind::La => "la",
            LossKind::Ce => "ce",
        }
    }
}

/// The loss and its settings, as a run's config saves them (`[loss]`, `kind = "bcl"` …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LossConfig {
    /// α · LA-CE(view 0) + β · BCL(views 1 and 2, class prototypes).
    Bcl(BclSettings),
    /// α · LA-CE + β · SupCon: BCL without class-averaging and class-complement.
    Supcon { temperature: f64, alpha: f64, beta: f64, logit_adjustment: f64 },
    /// Logit-adjusted cross-entropy of view 0.
    La { logit_adjustment: f64 },
    /// Cross-entropy of view 0.
    Ce,
}

/// Changes to a [`LossConfig`]: the `--loss`, `--temperature`, `--beta`, `--no-class-*`
/// flags, or a `[loss]` table of an overrides file (every key optional).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossChanges {
    pub kind: Option<LossKind>,
    pub temperature: Option<f64>,
    pub alpha: Option<f64>,
    pub beta: Option<f64>,
    pub logit_adjustment: Option<f64>,
    pub class_averaging: Option<bool>,
    pub class_complement: Option<bool>,
}

/// BCL's settings: every setting any loss has, so also what carries settings from one kind
/// to another.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BclSettings {
    /// τ of the contrastive loss.
    pub temperature: f64,
    /// Weight α of the logit-adjusted cross-entropy.
    pub alpha: f64,
    /// Weight β of the contrastive loss.
    pub beta: f64,
    /// τ of the logit adjustment.
    pub logit_adjustment: f64,
    pub class_averaging: bool,
    pub class_complement: bool,
}

impl BclSettings {
    /// BCL as the paper defines it: both switches on, logit adjustment τ = 1.
    pub fn paper(temperature: f64, alpha: f64, beta: f64) -> Self {
        Self { temperature, alpha, beta, logit_adjustment: 1.0, class_averaging: true, class_complement: true }
    }
}

impl LossConfig {
    /// BCL as the paper defines it ([`BclSettings::paper`]).
    pub fn bcl(temperature: f64, alpha: f64, beta: f64) -> Self {
        Self::Bcl(BclSettings::paper(temperature, alpha, beta))
    }

    pub fn kind(&self) -> LossKind {
        match self {
            Self::Bcl(_) => LossKind::Bcl,
            Self::Supcon { .. } => LossKind::Supcon,
            Self::La { .. } => LossKind::La,
            Self::Ce => LossKind::Ce,
        }
    }

    /// This loss with `changes` made. A kind without the contrastive settings it switches
    /// to takes them from `defaults` (the recipe's BCL); a setting the resulting kind has no
    /// use for is an error rather than ignored.
    pub fn changed(&self, changes: &LossChanges, defaults: &BclSettings) -> Result<Self> {
        let kind = changes.kind.unwrap_or(self.kind());
        changes.check_fits(kind)?;
        let s = self.settings(*defaults);
        let s = BclSettings {
            temperature: changes.temperature.unwrap_or(s.temperature),
            alpha: changes.alpha.unwrap_or(s.alpha),
            beta: changes.beta.unwrap_or(s.beta),
            logit_adjustment: changes.logit_adjustment.unwrap_or(s.logit_adjustment),
            class_averaging: changes.class_averaging.unwrap_or(s.class_averaging),
            class_complement: changes.class_complement.unwrap_or(s.class_complement),
        };
        let changed = Self::of_kind(kind, s);
        changed.validate()?;
        Ok(changed)
    }

    /// The settings this loss has, the others from `fallback`.
    fn settings(&self, fallback: BclSettings) -> BclSettings {
        match *self {
            Self::Bcl(settings) => settings,
            Self::Supcon { temperature, alpha, beta, logit_adjustment } => {
                BclSettings { temperature, alpha, beta, logit_adjustment, ..fallback }
            }
            Self::La { logit_adjustment } => BclSettings { logit_adjustment, ..fallback },
            Self::Ce => fallback,
        }
    }

    fn of_kind(kind: LossKind, s: BclSettings) -> Self {
        let BclSettings { temperature, alpha, beta, logit_adjustment, .. } = s;
        match kind {
            LossKind::Bcl => Self::Bcl(s),
            LossKind::Supcon => Self::Supcon { temperature, alpha, beta, logit_adjustment },
            LossKind::La => Self::La { logit_adjustment },
            LossKind::Ce => Self::Ce,
        }
    }

    /// Rejects settings that cannot train: non-finite numbers, τ ≤ 0, negative weights.
    pub fn validate(&self) -> Result<()> {
        let (temperature, weights, logit_adjustment) = match *self {
            Self::Bcl(BclSettings { temperature, alpha, beta, logit_adjustment, .. })
            | Self::Supcon { temperature, alpha, beta, logit_adjustment } => {
                (Some(temperature), Some((alpha, beta)), Some(logit_adjustment))
            }
            Self::La { logit_adjustment } => (None, None, Some(logit_adjustment)),
            Self::Ce => (None, None, None),
        };
        if let Some(t) = temperature {
            ensure!(t.is_finite() && t > 0.0, "loss.temperature = {t} must be a positive number");
        }
        if let Some((alpha, beta)) = weights {
            ensure!(
                alpha.is_finite() && beta.is_finite() && alpha >= 0.0 && beta >= 0.0,
                "the loss weights alpha = {alpha} and beta = {beta} must be finite and not negative"
            );
        }
        if let Some(tau) = logit_adjustment {
            ensure!(tau.is_finite(), "loss.logit_adjustment = {tau} is not a finite number");
        }
        Ok(())
    }
}

impl LossChanges {
    /// The changes that apply to `kind`, the rest dropped: how a config written before the
    /// `[loss]` table (every setting saved for every loss) reads.
    pub fn relevant_to(self, kind: LossKind) -> Self {
        let contrastive = kind.views() > 1;
        let keep = |on: bool, v: Option<f64>| v.filter(|_| on);
        let keep_switch = |v: Option<bool>| v.filter(|_| kind == LossKind::Bcl);
        Self {
            kind: Some(kind),
            temperature: keep(contrastive, self.temperature),
            alpha: keep(contrastive, self.alpha),
            beta: keep(contrastive, self.beta),
            logit_adjustment: keep(kind != LossKind::Ce, self.logit_adjustment),
            class_averaging: keep_switch(self.class_averaging),
            class_complement: keep_switch(self.class_complement),
        }
    }

    /// Refuses a setting the loss `kind` does not have.
    fn check_fits(&self, kind: LossKind) -> Result<()> {
        let mut foreign = Vec::new();
        let relevant = self.clone().relevant_to(kind);
        for (name, given, kept) in [
            ("temperature", self.temperature.is_some(), relevant.temperature.is_some()),
            ("alpha", self.alpha.is_some(), relevant.alpha.is_some()),
            ("beta", self.beta.is_some(), relevant.beta.is_some()),
            ("logit_adjustment", self.logit_adjustment.is_some(), relevant.logit_adjustment.is_some()),
            ("class_averaging", self.class_averaging.is_some(), relevant.class_averaging.is_some()),
            ("class_complement", self.class_complement.is_some(), relevant.class_complement.is_some()),
        ] {
            if given && !kept {
                foreign.push(name);
            }
        }
        if !foreign.is_empty() {
            bail!("the {} loss has no {} to set", kind.name(), foreign.join(" or "));
        }
        Ok(())
    }
}
