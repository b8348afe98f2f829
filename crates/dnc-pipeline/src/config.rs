//! The run configuration: one TOML file composed of each crate's own config, validated once,
//! written to `runs/<name>/config.toml` before any work.
//!
//! Unknown keys are errors (every struct is `deny_unknown_fields`); impossible values are errors
//! that name the key and the value ([`RunConfig::validate`]).

use crate::error::PipelineError;
use dnc_augment::TwoViewConfig;
use dnc_cluster::KMeansConfig;
use dnc_core::DeviceSpec;
use dnc_engine::OptimizerConfig;
use dnc_eval::{KnnConfig, LinearProbeConfig};

use dnc_models::EncoderConfig;
use dnc_objectives::ObjectiveConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// A name for people (reports, model cards).
    pub name: String,
    /// Seeds weights, shuffling, augmentation and k-means.
    pub seed: u64,
    /// `cpu`, `cuda:N` or `auto`.
    pub device: DeviceSpec,
    /// `dnc` (base → embed → cluster → experts → distill → eval) or `moclr` (base → eval).
    pub method: Method,
    /// Start the base model's backbone from pretrained weights: `hf://ORG/NAME[@REVISION][/FILE]`
    /// (the Hugging Face hub, cached; `HF_HUB_OFFLINE=1` uses the cache only) or a local
    /// safetensors file, with torchvision or timm tensor names. A model file of a dnc run (a
    /// base, an expert, a student: names `backbone.*`, `projector.*`) sets the whole encoder;
    /// with `base.epochs = 0` it is the base as it is, and the run is a second round of DnC.
    pub init_from: Option<String>,
    /// Also train the matched MoCLR baseline (same total epochs as base + experts + distill).
    pub baseline: bool,
    pub data: DataConfig,
    pub augment: TwoViewConfig,
    pub model: EncoderConfig,
    pub base: TrainConfig,
    pub divide: DivideConfig,
    pub experts: ExpertsConfig,
    pub distill: DistillConfig,
    pub eval: EvalConfig,
}

/// What a run trains.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Divide and Contrast: base, embed, cluster, experts, distill, then evaluation.
    Dnc,
    /// MoCLR alone: the base model, then evaluation.
    Moclr,
}

/// Where the images are and how to read them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Folder holding `train/` and `test/` (class subfolders; labels are used only to evaluate).
    pub root: PathBuf,
    /// Images to train on instead of `<root>/train`, without labels: a folder of images at any
    /// depth (a photo dump, a crawl, an archive), a list file (one path per line, relative to
    /// the list), or WebDataset tar shards (`shards/{000000..000099}.tar` or one `.tar` file).
    /// Evaluation then reads `eval.data`, or is left out when that is not set.
    pub train: Option<PathBuf>,
    /// Subset of the train split, shared among classes by `subset` (0 = all images).
    pub train_limit: usize,
    /// Subset of the test split, shared among classes by `subset` (0 = all images).
    pub test_limit: usize,
    /// How the `*_limit` subsets are shared among the classes: `balanced` (the same number
    /// from every class, the reference rule) or `proportional` (each class in proportion to
    /// its size, at least one image each: a smaller copy of a long-tailed set's distribution).
    pub subset: dnc_data::SubsetRule,
    /// Labelled images for evaluation's k-NN memory bank and linear-probe training set, when
    /// they should differ from `<root>/train` (e.g. a balanced set while training on a
    /// long-tailed one). Class folders must match the test split's.
    pub eval_bank: Option<PathBuf>,
    /// Subset of `eval_bank`, shared among classes by `subset` (0 = all images).
    pub eval_bank_limit: usize,
    /// `skip` (count and report) or `fail` on an undecodable image.
    pub on_corrupt: dnc_data::OnCorrupt,
    /// The largest image read, in pixels (width × height as its header declares it; Pillow's
    /// limit by default): a larger one is an undecodable image under `on_corrupt`, found without
    /// decoding it (a small file can declare billions of pixels).
    pub max_image_pixels: u64,
    /// Decode every image once, shrunk so that its shorter side is the views' size, into a
    /// memory-mapped file in `<run>/cache/` that every stage reads (right for data read for
    /// many epochs; no decoded image is held in memory either way). The trade-off: a small
    /// random crop of a large image is then cut from the shrunk image and enlarged, where
    /// without the cache it keeps the photo's own detail; images no larger than the views (CIFAR)
    /// are cached as they are. Run folders written before it existed say `cache_decoded` (a
    /// full-resolution cache in memory), read as this.
    #[serde(alias = "cache_decoded")]
    pub cache_resized: bool,
    /// Training order: 0 shuffles all images at once (random reads); N > 0 reads WebDataset
    /// shards whole, in a seeded random order, through a shuffle buffer of N images (near
    /// sequential reads). Files outside shards are shuffled alike either way.
    pub shuffle_buffer: usize,
    /// Decode/augment threads (0 = on the training thread).
    pub workers: usize,
    /// Batches decoded ahead of training.
    pub prefetch_batches: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("fixtures/cifar10-mini"),
            train: None,
            train_limit: 0,
            test_limit: 0,
            subset: dnc_data::SubsetRule::Balanced,
            eval_bank: None,
            eval_bank_limit: 0,
            on_corrupt: dnc_data::OnCorrupt::Skip,
            max_image_pixels: dnc_data::DEFAULT_MAX_IMAGE_PIXELS,
            cache_resized: false,
            shuffle_buffer: 0,
            workers: 1,
            prefetch_batches: 2,
        }
    }
}

/// One contrastive training run (the base model, an expert, the baseline).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub objective: ObjectiveConfig,
    pub optimizer: OptimizerConfig,
    /// Linear warm-up, in epochs, before the cosine decay.
    pub warmup_epochs: f64,
    /// Initial EMA momentum m0 of the target network (SPEC: 0.996; raised to 1 on a cosine).
    pub ema_momentum: f64,
    /// Save a checkpoint every this many steps (and at every epoch end).
    pub checkpoint_every: usize,
    /// Checkpoints kept per stage.
    pub keep_checkpoints: usize,
    /// Log a metrics line every this many steps.
    pub log_every: usize,
    /// Scale the gradients down to this global norm when they exceed it (logged as
    /// `grad_norm`); 0 leaves them as they are.
    pub clip_grad_norm: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 128,
            objective: ObjectiveConfig::default(),
            optimizer: OptimizerConfig::default(),
            warmup_epochs: 0.0,
            ema_momentum: 0.99,
            checkpoint_every: 50,
            keep_checkpoints: 2,
            log_every: 5,
            clip_grad_norm: 0.0,
        }
    }
}

/// Which layer of the base model the images are clustered on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClusterLayer {
    /// The projector's hidden layer after BatchNorm + ReLU (the paper's choice).
    Hidden,
    /// The backbone output.
    Backbone,
    /// The projector output.
    Output,
}

/// Step 2: embed and cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DivideConfig {
    pub layer: ClusterLayer,
    /// k-means settings; `kmeans.n_clusters` is K, the number of experts (the paper: 5 or 10).
    /// `kmeans.seed` is added to the run's `seed`, so that runs with other seeds cluster
    /// with other k-means initialisations. `kmeans.sample_size` unset fits on 1,000 images per
    /// cluster, at least 25,000 (all of them when there are no more), then assigns every image
    /// reading the features in chunks; set it at or above the image count to fit on all.
    pub kmeans: KMeansConfig,
    /// Batch size of the embed stage (the base model over every training image).
    pub batch_size: usize,
}

impl Default for DivideConfig {
    fn default() -> Self {
        Self {
            layer: ClusterLayer::Hidden,
            kmeans: KMeansConfig::new(5),
            batch_size: 256,
        }
    }
}

/// How the expert epoch budget is split across experts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BudgetSplit {
    /// In proportion to cluster size (the paper): every expert sees the same number of epochs of
    /// its own data, and the total equals `epochs` full-dataset epochs.
    Proportional,
    /// The same number of steps for every expert.
    Equal,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Random initialisation (the paper's experts).
    Scratch,
    /// Start from the base model's weights.
    Base,
}

/// Where the distillation student's backbone and projector start.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StudentInit {
    /// Random initialisation.
    Scratch,
    /// The base model's weights.
    Base,
    /// The mean of the experts' weights, each weighted by its cluster's share of the images
    /// (experts trained from the base share its basin, as fine-tuned models averaged in a
    /// "model soup" do): the student starts from all the experts' training, not the base's only.
    /// Needs `experts.init = "base"`.
    ExpertMean,
    /// The base plus the sum of every expert's change from it (BatchNorm running statistics:
    /// the weighted mean). With the proportional budget the experts together trained
    /// `experts.epochs` epochs of the whole data, on batches of one cluster each; to first order
    /// their summed changes are what those epochs would have added to one model, so the student
    /// starts from all the training the stages have done. Needs `experts.init = "base"`.
    ExpertSum,
}

/// What to do with a cluster smaller than the batch size.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmallCluster {
    Error,
    /// Merge it into its nearest cluster (logged).
    Merge,
}

/// How the training images are divided among the experts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Partition {
    /// The k-means clusters (Divide and Contrast).
    Kmeans,
    /// A seeded random partition with the k-means clusters' sizes: the paper's control
    /// (Table 10), whose experts see no harder negatives than the base did.
    Random,
}

/// Step 3: one MoCLR expert per cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExpertsConfig {
    /// Expert budget in full-dataset epochs, split across experts.
    pub epochs: usize,
    pub partition: Partition,
    pub split: BudgetSplit,
    pub init: Init,
    pub small_cluster: SmallCluster,
    /// Devices the experts are spread over, round-robin (empty = the run's device).
    pub devices: Vec<DeviceSpec>,
    /// Training settings; `epochs` here is ignored (the budget above decides).
    pub train: Option<TrainConfig>,
}

impl Default for ExpertsConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            partition: Partition::Kmeans,
            split: BudgetSplit::Proportional,
            init: Init::Scratch,
            small_cluster: SmallCluster::Merge,
            devices: Vec::new(),
            train: None,
        }
    }
}

/// Which teachers the student learns from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Teachers {
    /// The base and every expert (Divide and Contrast).
    All,
    /// The base alone: the paper's control (Table 11), what distillation gives without experts.
    Base,
}

/// How the heads' last linear layer starts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HeadInit {
    /// As every other layer (the paper).
    Random,
    /// At zero (the default): predictions start at 0, and the student's first gradients are
    /// zero.
    Zero,
}

/// Step 4: distil base and experts into one student.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub init: StudentInit,
    /// With `init = "expert-sum"`: the student starts from the base plus this multiple of the
    /// experts' summed changes (1: the whole sum).
    pub merge_scale: f64,
    pub teachers: Teachers,
    /// Weight of the regression terms against the other terms of the loss (1: the paper).
    pub regression_weight: f64,
    pub optimizer: OptimizerConfig,
    /// Linear learning-rate warm-up, in epochs, before the cosine decay.
    pub warmup_epochs: f64,
    /// Epochs at the start in which only the heads learn (the student's projection is
    /// detached), so that the random heads' first gradients cannot undo the student's start.
    pub head_warmup_epochs: f64,
    pub head_init: HeadInit,
    /// Where the expert heads' BatchNorm takes its statistics: `batch` (the whole batch; only
    /// the cluster's rows enter the loss) or `cluster` (the cluster's sub-batch only).
    pub head_batch_norm: dnc_distill::HeadBatchNorm,
    /// Weight of an in-batch contrastive term per head beside the regression (0: the paper).
    pub contrastive_weight: f64,
    pub contrastive_temperature: f64,
    /// Weight of a MoCLR term on the student itself (two views against its own EMA target,
    /// with the base's temperature and EMA momentum) beside the regression. Default 1; 0 with
    /// `head_init = "random"` is the paper's recipe.
    pub student_moclr_weight: f64,
    /// Lower the student's MoCLR weight to 0 over the distillation on a cosine, so that the
    /// last steps regress on the teachers alone.
    pub student_moclr_anneal: bool,
    /// The layer the heads read from the student and regress on every teacher: `projection`
    /// (the paper) or `features` (the backbone features, which evaluation reads).
    pub target_layer: dnc_distill::DistillTarget,
    /// Where the heads' targets come from: `augmented` (the frozen teachers run on every step's
    /// view) or `cached` (the paper's cheaper variant: the base's and the own cluster's expert's
    /// targets of every training image's centre crop, computed once into
    /// `distill/targets.safetensors` and reused on resume; a step then runs the student alone).
    pub targets: dnc_distill::TargetSource,
    pub checkpoint_every: usize,
    pub keep_checkpoints: usize,
    pub log_every: usize,
    /// Scale the gradients down to this global norm when they exceed it (logged as
    /// `grad_norm`); 0 leaves them as they are. A guard for the regression heads, which can
    /// diverge at a learning rate the student's own MoCLR term takes.
    pub clip_grad_norm: f64,
}

impl Default for DistillConfig {
    fn default() -> Self {
        let options = dnc_distill::DistillOptions::default();
        Self {
            epochs: 10,
            batch_size: 128,
            init: StudentInit::Scratch,
            merge_scale: 1.0,
            teachers: Teachers::All,
            regression_weight: options.regression_weight,
            optimizer: OptimizerConfig::default(),
            warmup_epochs: 0.0,
            head_warmup_epochs: options.head_warmup_epochs,
            head_init: HeadInit::Zero,
            head_batch_norm: options.head_batch_norm,
            contrastive_weight: options.contrastive_weight,
            contrastive_temperature: options.contrastive_temperature,
            student_moclr_weight: 1.0,
            student_moclr_anneal: false,
            target_layer: options.target,
            targets: dnc_distill::TargetSource::Augmented,
            checkpoint_every: 50,
            keep_checkpoints: 2,
            log_every: 5,
            clip_grad_norm: 0.0,
        }
    }
}

/// Evaluation protocol (SPEC): weighted k-NN and a linear probe on frozen backbone features.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// A labelled folder (`train/` and `test/` class folders) to evaluate on: the k-NN bank
    /// and probe training set, and the test split. Unset, evaluation reads `data.root`, unless
    /// `data.train` names the training images, in which case the run has no accuracy.
    pub data: Option<PathBuf>,
    pub knn: KnnConfig,
    pub linear: LinearProbeConfig,
    /// Train the linear probe too (k-NN is always computed).
    pub linear_probe: bool,
    /// Batch size of evaluation's embeddings (and of the distillation's cached targets).
    pub batch_size: usize,
    /// Also report the "BatchNorm-adapted" floor: the untrained network after one pass over the
    /// training data in training mode (its BatchNorm statistics fitted, no weight changed).
    pub bn_adapted_floor: bool,
    /// Also evaluate every expert's backbone.
    pub experts: bool,
    /// In a DnC run, also measure where accuracy is won or lost: experts against the base on
    /// their own clusters, the routed base ‖ expert ceiling, and how closely the student's heads
    /// match their teachers (`info.diagnostics`, the report's Diagnostics section).
    pub diagnostics: bool,
    /// A JSON file naming each class's group, to score the clusters against coarser labels
    /// than the classes (GTSRB's sign groups): a list of `{"folder": CLASS, "group": GROUP}`
    /// objects (GTSRB's `classes.json`) or one object `{CLASS: GROUP, ...}`. A relative path is
    /// read from `data.root`. The scores are `info.cluster_groups` and a line of the report; a
    /// file that is missing or does not fit the classes is a warning, not a failed evaluation.
    pub class_groups: Option<PathBuf>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            data: None,
            knn: KnnConfig::default(),
            linear: LinearProbeConfig::default(),
            linear_probe: true,
            batch_size: 256,
            bn_adapted_floor: true,
            experts: false,
            diagnostics: true,
            class_groups: None,
        }
    }
}

impl EvalConfig {
    /// The evaluator's own settings.
    pub fn protocol(&self) -> dnc_eval::EvalConfig {
        dnc_eval::EvalConfig {
            knn: self.knn.clone(),
            linear: self.linear.clone(),
            linear_probe: self.linear_probe,
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: "dnc".into(),
            seed: 0,
            device: DeviceSpec::Cpu,
            method: Method::Dnc,
            init_from: None,
            baseline: false,
            data: DataConfig::default(),
            augment: TwoViewConfig::cifar(),
            model: EncoderConfig::default(),
            base: TrainConfig::default(),
            divide: DivideConfig::default(),
            experts: ExpertsConfig::default(),
            distill: DistillConfig::default(),
            eval: EvalConfig::default(),
        }
    }
}

impl RunConfig {
    /// Reads a TOML file; unknown keys and wrong types are errors naming the file and key.
    pub fn from_file(path: &Path) -> Result<Self, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
        Self::from_toml(&text).map_err(|message| PipelineError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Reads a config document; every key it leaves out keeps its built-in default, a partial
    /// table included ([`RunConfig::from_value`]).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let doc: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        Self::from_value(doc)
    }

    /// Reads a parsed config document (a file with its `--set` overrides applied) laid over the
    /// built-in defaults: a table names only the keys it changes, and every other key keeps the
    /// value in force (`[augment.view1]` with only `flip_p` keeps the default view's size, jitter
    /// and normalisation). An `optimizer` table that names another `kind` starts from that
    /// kind's defaults, and a partial `experts.train` from the `[base]` in force. Errors name the
    /// key.
    pub fn from_value(doc: toml::Value) -> Result<Self, String> {
        let toml::Value::Table(mut doc) = doc else {
            return Err("a run config is a TOML table".into());
        };
        // The older name of `data.cache_resized`, read as it (the defaults carry the new name,
        // and the two together would be a duplicate key).
        if let Some(toml::Value::Table(data)) = doc.get_mut("data")
            && !data.contains_key("cache_resized")
            && let Some(old) = data.remove("cache_decoded")
        {
            data.insert("cache_resized".into(), old);
        }
        let toml::Value::Table(defaults) =
            toml::Value::try_from(Self::default()).expect("the default config serialises")
        else {
            unreachable!("a struct serialises to a table")
        };
        toml::Value::Table(crate::layers::with_defaults(defaults, doc))
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the run config serialises to TOML")
    }

    /// The expert training settings: `experts.train` when given, else the base settings.
    pub fn expert_train(&self) -> &TrainConfig {
        self.experts.train.as_ref().unwrap_or(&self.base)
    }

    /// The distillation step's options (the student's MoCLR term takes the base's temperature
    /// and EMA momentum).
    pub fn distill_options(&self) -> dnc_distill::DistillOptions {
        let d = &self.distill;
        dnc_distill::DistillOptions {
            regression_weight: d.regression_weight,
            head_warmup_epochs: d.head_warmup_epochs,
            zero_init_heads: d.head_init == HeadInit::Zero,
            head_batch_norm: d.head_batch_norm,
            contrastive_weight: d.contrastive_weight,
            contrastive_temperature: d.contrastive_temperature,
            student_moclr: (d.student_moclr_weight > 0.0).then_some(dnc_distill::StudentMoclr {
                weight: d.student_moclr_weight,
                temperature: self.base.objective.temperature,
                ema_momentum: self.base.ema_momentum,
                anneal: d.student_moclr_anneal,
            }),
            target: d.target_layer,
        }
    }

    /// Epochs of the matched baseline: the DnC run's total (base + experts + distill).
    pub fn baseline_epochs(&self) -> usize {
        self.base.epochs + self.experts.epochs + self.distill.epochs
    }
}
