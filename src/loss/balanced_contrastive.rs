//! The balanced contrastive loss (BCL) of Zhu et al., CVPR 2022, eq. 6, and the supervised
//! contrastive loss (SupCon, Khosla et al. 2020) it extends.
//!
//! Anchors are the 2B contrastive features of one batch (two views per image). Compared
//! with SupCon, BCL makes two changes, each behind its own switch for the ablation:
//! - *class-complement*: the C class prototypes join the contrast set, so every class is
//!   present in every batch, however rare it is;
//! - *class-averaging*: the denominator averages the exponentials within each class
//!   instead of summing them, so head classes do not dominate the negatives.
//!
//! With both switches off this is SupCon.
use tch::{Kind, Tensor};

/// The contrastive loss with its hyper-parameters, as the reference's
/// `BalSCL(cls_num_list, temperature)` holds them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalancedContrastiveLoss {
    /// C: the number of classes, and of prototypes.
    pub num_classes: i64,
    /// τ, dividing every similarity.
    pub temperature: f64,
    /// Average each class's exponentials in the denominator instead of summing them.
    pub class_averaging: bool,
    /// Add the C class prototypes to the contrast set.
    pub class_complement: bool,
}

impl BalancedContrastiveLoss {
    /// BCL as the paper defines it: both switches on.
    pub fn bcl(num_classes: i64, temperature: f64) -> Self {
        Self { num_classes, temperature, class_averaging: true, class_complement: true }
    }

    /// SupCon: both switches off.
    pub fn supcon(num_classes: i64, temperature: f64) -> Self {
        Self { class_averaging: false, class_complement: false, ..Self::bcl(num_classes, temperature) }
    }

    /// The loss of one batch, averaged over its 2B anchors.
    ///
    /// - `z1`, `z2`: B × D contrastive features of the two views, rows L2-normalised;
    /// - `labels`: B integer labels in `0..num_classes`;
    /// - `prototypes`: C × D class prototypes (`head_fc` of the classifier weights), normalised.
    ///
    /// Every anchor has at least one positive (its other view), so the loss is finite for
    /// any batch, including a class seen once or a batch of a single class.
    pub fn forward_views(&self, z1: &Tensor, z2: &Tensor, labels: &Tensor, prototypes: &Tensor) -> Tensor {
        let labels = labels.to_kind(Kind::Int64);
        let views = Tensor::cat(&[z1, z2], 0);
        let anchors = Tensor::arange(views.size()[0], (Kind::Int64, z1.device()));
        self.forward(&views, &Tensor::cat(&[&labels, &labels], 0), &anchors, prototypes)
    }

    /// The loss averaged over the anchors `anchor_rows` of `views` only: the share of one
    /// rank when the batch is gathered across ranks (every view still takes part as a
    /// contrast).
    ///
    /// - `views`: M × D features, the batch's view-1 rows then its view-2 rows;
    /// - `view_labels`: their M labels;
    /// - `anchor_rows`: indices into `views` of the anchors.
    pub fn forward(&self, views: &Tensor, view_labels: &Tensor, anchor_rows: &Tensor, prototypes: &Tensor) -> Tensor {
        let Self { num_classes, temperature, class_averaging, class_complement } = *self;
        let (kind, device) = (views.kind(), views.device());
        let view_labels = view_labels.to_kind(Kind::Int64);

        // Anchors a_i (rows of the views) with their labels.
        let anchors = views.index_select(0, anchor_rows);
        let anchor_labels = view_labels.index_select(0, anchor_rows);

        // Contrast set: every view, then (class-complement) one prototype per class.
        let (contrast, contrast_labels) = if class_complement {
            let class_ids = Tensor::arange(num_classes, (Kind::Int64, device));
            (Tensor::cat(&[views, prototypes], 0), Tensor::cat(&[&view_labels, &class_ids], 0))
        } else {
            (views.shallow_clone(), view_labels.shallow_clone())
        };
        let num_contrast = contrast.size()[0];

        // s_ij = a_i · c_j / τ, minus the row maximum (no gradient) for a stable exp().
        let similarity = anchors.matmul(&contrast.tr()) / temperature;
        let similarity = &similarity - similarity.amax([1].as_slice(), true).detach();

        // j = i (the anchor itself) takes no part; positives P(i) share the anchor's label.
        let not_self = 1.0 - anchor_rows.one_hot(num_contrast).to_kind(kind);
        let same_label = anchor_labels.unsqueeze(1).eq_tensor(&contrast_labels.unsqueeze(0)).to_kind(kind);
        let positives = same_label * &not_self;

        let exp_similarity = similarity.exp() * &not_self;
        let denominator = if class_averaging {
            // n̂_k: rows of class k in the contrast set. Each exponential is divided by the size
            // of its class, less one for the anchor's own class (the anchor is not in it).
            let class_sizes = contrast_labels.one_hot(num_classes).sum_dim_intlist([0].as_slice(), false, kind);
            let weights = class_sizes.index_select(0, &contrast_labels).unsqueeze(0) - &positives;
            (exp_similarity / weights).sum_dim_intlist([1].as_slice(), true, kind)
        } else {
            exp_similarity.sum_dim_intlist([1].as_slice(), true, kind)
        };

        // loss_i = −(1/|P(i)|) Σ_{p ∈ P(i)} (s_ip − log den_i), averaged over the anchors.
        let log_probability = similarity - denominator.log();
        let mean_positive_log_probability = (&positives * log_probability).sum_dim_intlist([1].as_slice(), false, kind)
            / positives.sum_dim_intlist([1].as_slice(), false, kind);
        -mean_positive_log_probability.mean(kind)
    }
}
