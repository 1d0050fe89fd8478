//! Data-parallel training over c10d with the CPU (store) collectives: two ranks compute what
//! one process computes with the same global batch.
use std::path::Path;
use std::process::{Command, Output};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{path, tiny_fashion_mnist};
use bcl::c10d::{Store, sum_over_ranks};
use bcl::checkpoint::{self, Checkpoint};
use bcl::distributed::{Group, World};
use bcl::loss::BalancedContrastiveLoss;
use bcl::model::norm::{BatchNorm, SumOverRanks, with_statistics_over_ranks};
use rand::{Rng, SeedableRng};
use tch::nn::ModuleT;
use tch::{Device, Tensor};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `f(group, input)` on one thread per input, thread k being rank k of a group with the
/// CPU (store) collectives; the results in rank order.
fn on_rank_threads<I, T, F>(inputs: Vec<I>, f: F) -> Vec<T>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(&Arc<Group>, I) -> T + Send + Sync + 'static,
{
    let (port, world_size, f) = (free_port(), inputs.len(), Arc::new(f));
    let threads: Vec<_> = inputs
        .into_iter()
        .enumerate()
        .map(|(rank, input)| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                let master_addr = "127.0.0.1".to_string();
                let world = World {
                    rank,
                    world_size,
                    local_rank: rank,
                    master_addr,
                    master_port: port,
                    launcher_store_prefix: None,
                };
                let group = Arc::new(Group::join(world, Device::Cpu).unwrap());
                let result = f(&group, input);
                group.finish().unwrap();
                result
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Random rows of unit length.
fn unit_rows(rng: &mut rand::rngs::StdRng, rows: i64, dim: i64) -> Tensor {
    let values: Vec<f64> = (0..rows * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    let t = Tensor::from_slice(&values).view([rows, dim]);
    &t / t.norm_scalaropt_dim(2, [1].as_slice(), true)
}

/// Item 2 of the issue: the BCL loss gathered over 2 ranks is the one-process loss of the
/// concatenated batch, and the gradients each rank's features and the prototypes get add
/// up to that loss's gradients. Run on two threads, each a rank with its own store client.
#[test]
fn gathered_bcl_loss_and_gradients_equal_one_process_on_the_whole_batch() {
    let (world_size, b, dim, classes) = (2i64, 6i64, 8i64, 5i64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (z1, z2) = (unit_rows(&mut rng, world_size * b, dim), unit_rows(&mut rng, world_size * b, dim));
    let prototypes = unit_rows(&mut rng, classes, dim);
    // Class 4 appears once in the whole batch, on rank 1: its only same-class contrasts on
    // rank 0 come from the gather.
    let labels = Tensor::from_slice(&[0i64, 0, 1, 2, 3, 1, 0, 1, 2, 4, 3, 0]);

    // One process, the whole batch.
    let (g1, g2, gp) = (z1.set_requires_grad(true), z2.set_requires_grad(true), prototypes.set_requires_grad(true));
    let whole = BalancedContrastiveLoss {
        num_classes: classes,
        temperature: 0.1,
        class_averaging: true,
        class_complement: true,
    }
    .forward_views(&g1, &g2, &labels, &gp);
    whole.backward();
    let (whole_grad1, whole_grad2, whole_grad_prototypes) = (g1.grad(), g2.grad(), gp.grad());

    let slice = |t: &Tensor, rank: i64| t.narrow(0, rank * b, b).detach().copy();
    let inputs = (0..world_size)
        .map(|r| (slice(&z1, r), slice(&z2, r), slice(&labels, r), prototypes.detach().copy()))
        .collect();
    let results = on_rank_threads(inputs, move |group, (z1, z2, labels, prototypes)| {
        let (z1, z2, prototypes) =
            (z1.set_requires_grad(true), z2.set_requires_grad(true), prototypes.set_requires_grad(true));
        let (value, surrogate) =
            bcl::distributed::gathered_loss(Some(group), &z1, &z2, &labels, |views, view_labels, anchors| {
                BalancedContrastiveLoss {
                    num_classes: classes,
                    temperature: 0.1,
                    class_averaging: true,
                    class_complement: true,
                }
                .forward(views, view_labels, anchors, &prototypes)
            })
            .unwrap();
        surrogate.backward();
        (value.double_value(&[]), z1.grad(), z2.grad(), prototypes.grad())
    });

    // The global loss is the mean of the ranks' values; gradients are averaged over ranks.
    let mean_value = results.iter().map(|r| r.0).sum::<f64>() / world_size as f64;
    assert!((mean_value - whole.double_value(&[])).abs() < 1e-12, "{mean_value} vs {}", whole.double_value(&[]));
    let close = |a: &Tensor, b: &Tensor, what: &str| {
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(diff < 1e-12, "{what}: gradients differ by {diff}");
    };
    for (rank, (_, grad1, grad2, _)) in results.iter().enumerate() {
        let rows = |t: &Tensor| t.narrow(0, rank as i64 * b, b);
        close(&(grad1 / world_size as f64), &rows(&whole_grad1), &format!("rank {rank}, view 1"));
        close(&(grad2 / world_size as f64), &rows(&whole_grad2), &format!("rank {rank}, view 2"));
    }
    let prototype_grad = (&results[0].3 + &results[1].3) / world_size as f64;
    close(&prototype_grad, &whole_grad_prototypes, "prototypes");
}

/// SyncBatchNorm on 2 ranks (threads, store collectives) is BatchNorm over the concatenated
/// batch: the same outputs and running statistics on every rank, and each rank's input gets
/// the gradient of the whole batch's loss, through the sums over the ranks in the backward
/// pass; the weight gradients add up over the ranks.
#[test]
fn sync_batch_norm_on_two_ranks_is_batch_norm_over_the_whole_batch() {
    let (world_size, b, channels) = (2i64, 5i64, 3i64);
    // In float64, where SyncBatchNorm's sums and BatchNorm's kernel agree to rounding.
    let x = Tensor::randn([world_size * b, channels, 4, 4], (tch::Kind::Double, Device::Cpu)) * 3.0 + 1.5;
    let upstream = Tensor::randn([world_size * b, channels, 4, 4], (tch::Kind::Double, Device::Cpu));
    let (whole_y, whole_grads, whole_running) = batch_norm_step(&x, &upstream, None);

    let inputs = (0..world_size).map(|r| (x.narrow(0, r * b, b).copy(), upstream.narrow(0, r * b, b).copy())).collect();
    let results = on_rank_threads(inputs, |group, (x, upstream)| {
        let group = Arc::clone(group);
        let sum: Rc<SumOverRanks> = Rc::new(move |t: &Tensor| sum_over_ranks(Arc::clone(&group), t));
        batch_norm_step(&x, &upstream, Some(sum))
    });
    let close = |a: &Tensor, b: &Tensor, what: &str| {
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(diff < 1e-10, "{what}: differs by {diff}");
    };
    for (rank, (y, [grad_x, _, _], running)) in results.iter().enumerate() {
        let rows = |t: &Tensor| t.narrow(0, rank as i64 * b, b);
        close(y, &rows(&whole_y), &format!("rank {rank}: output"));
        close(grad_x, &rows(&whole_grads[0]), &format!("rank {rank}: input gradient"));
        close(&running[0], &whole_running[0], &format!("rank {rank}: running mean"));
        close(&running[1], &whole_running[1], &format!("rank {rank}: running variance"));
    }
    for (k, what) in [(1, "weight"), (2, "bias")] {
        close(&(&results[0].1[k] + &results[1].1[k]), &whole_grads[k], &format!("{what} gradient"));
    }
}

/// A BatchNorm layer (weight and bias set), the output of a training step on `x` (with
/// the statistics summed by `sum` if given), and after the loss ⟨y, upstream⟩'s backward
/// pass, the gradients of x, weight and bias, and the running mean and variance.
fn batch_norm_step(x: &Tensor, upstream: &Tensor, sum: Option<Rc<SumOverRanks>>) -> (Tensor, [Tensor; 3], [Tensor; 2]) {
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let norm = BatchNorm::new(vs.root() / "bn", x.size()[1], 2);
    vs.set_kind(x.kind());
    let variables = vs.variables();
    tch::no_grad(|| {
        variables["bn.weight"].shallow_clone().copy_(&Tensor::from_slice(&[0.5, 2.0, -1.0]));
        variables["bn.bias"].shallow_clone().copy_(&Tensor::from_slice(&[0.1, -0.3, 0.7]));
    });
    let x = x.detach().copy().set_requires_grad(true);
    let y = match sum {
        Some(sum) => with_statistics_over_ranks(sum, || norm.forward_t(&x, true)).unwrap(),
        None => norm.forward_t(&x, true),
    };
    (&y * upstream).sum(x.kind()).f_backward().unwrap();
    let grads = [x.grad(), variables["bn.weight"].grad(), variables["bn.bias"].grad()];
    (y.detach(), grads, [variables["bn.running_mean"].copy(), variables["bn.running_var"].copy()])
}

fn bcl(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_bcl"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .env("RUST_BACKTRACE", "0")
        // One libtorch thread per process on every machine: how a reduction is split over
        // threads changes its rounding (oneDNN's NHWC weight gradients by 1e-3 between 1 and
        // 2 threads), and the comparison below is tighter than that.
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("bcl runs");
    assert!(
        out.status.success(),
        "bcl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The epoch's running (ce, contrastive) sums that a checkpoint holds.
fn loss_sums(checkpoint: &Checkpoint) -> (f64, f64) {
    let state: serde_json::Value = serde_json::from_str(&checkpoint.metadata["state"]).unwrap();
    (state["sums"]["ce"].as_f64().unwrap(), state["sums"]["contrastive"].as_f64().unwrap())
}

/// The largest difference between the parameters (with `momentum`, also the momentum
/// buffers) of two checkpoints, or with `running` between their BatchNorm running
/// statistics, relative to each tensor's scale (at least 1).
fn largest_difference(a: &Checkpoint, b: &Checkpoint, momentum: bool, running: bool) -> (f64, String) {
    let mut worst = (0.0, String::new());
    let mut parts = vec![("", &a.weights, &b.weights)];
    if momentum {
        parts.push(("momentum of ", &a.optimizer, &b.optimizer));
    }
    for (part, a_tensors, b_tensors) in parts {
        for (name, t) in a_tensors {
            if running != (name.contains("running_") || name.contains("num_batches_tracked")) {
                continue;
            }
            let other = &b_tensors[name];
            let scale = other.abs().max().double_value(&[]).max(1.0);
            let diff = (t - other).abs().max().double_value(&[]) / scale;
            if diff > worst.0 {
                worst = (diff, format!("{part}{name}"));
            }
        }
    }
    worst
}

/// Short training runs on tiny Fashion-MNIST (batch 16), each in its own folder.
struct TinyRuns {
    data: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl TinyRuns {
    fn new() -> Self {
        TinyRuns { data: tiny_fashion_mnist(20, 5), dir: tempfile::tempdir().unwrap() }
    }

    /// A file in the runs' folder holding `text`.
    fn config(&self, name: &str, text: &str) -> std::path::PathBuf {
        let file = self.dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        file
    }

    /// The arguments of `bcl` for `steps` steps, without `--out`; in float32, whose rounding
    /// the comparisons' tolerances are made for.
    fn train_args(&self, steps: usize) -> Vec<String> {
        let data = path(self.data.path());
        let args = [
            "train",
            "--root",
            data,
            "--imb-factor",
            "5",
            "--batch-size",
            "16",
            "--lr",
            "0.01",
            "--epochs",
            "2",
            "--amp",
            "off",
        ];
        let more = ["--device", "cpu", "--workers", "1", "--max-steps", &steps.to_string()].map(String::from);
        args.map(String::from).into_iter().chain(more).collect()
    }

    /// Trains `steps` steps into the folder `name`, with `extra` arguments; its checkpoint.
    fn train(&self, name: &str, steps: usize, extra: &[&str]) -> Checkpoint {
        let out = self.dir.path().join(name);
        let mut args = self.train_args(steps);
        args.extend(["--out", path(&out)].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        bcl(&args.iter().map(String::as_str).collect::<Vec<_>>());
        checkpoint::load(&out.join("last.safetensors")).unwrap()
    }
}

/// Checks that `two` (2 processes) and `one` (1 process) ran the same step: weights within
/// `tolerance`, and this step's losses (the increase of the checkpoints' running sums since
/// `previous`) within 1e-4 relative. Returns the sums.
fn assert_same_step(
    (two, one): (&Checkpoint, &Checkpoint),
    (step, tolerance, running): (usize, f64, bool),
    previous: [(f64, f64); 2],
) -> [(f64, f64); 2] {
    let (diff, name) = largest_difference(two, one, step == 1, running);
    assert!(diff < tolerance, "after {step} steps, {name} differs by {diff} (relative)");
    let sums = [loss_sums(two), loss_sums(one)];
    let step_loss = |k: usize| (sums[k].0 - previous[k].0, sums[k].1 - previous[k].1);
    let (a, b) = (step_loss(0), step_loss(1));
    assert!(
        (a.0 - b.0).abs() < 1e-4 * b.0.abs() && (a.1 - b.1).abs() < 1e-4 * b.1.abs(),
        "step {step}: {a:?} vs {b:?}"
    );
    eprintln!("step {step}: losses {a:?} vs {b:?}; largest difference {diff:.2e} ({name})");
    sums
}

/// Item 1 of the issue, with real processes: `bcl train --nproc-per-node 2` (global batch
/// 2 × 8) follows one process with batch 16 step by step — the same losses and the same
/// weights (to float rounding) — when the one process takes its BatchNorm statistics over
/// the same groups of 8 (`bn_group_size`; BatchNorm is per process). Measured: 5e-6 after
/// step 1 (weights and momentum), 2e-4 in the weights after step 2 — rounding differences
/// grow fast in this model (2 libtorch threads instead of 1 move step 1's gradients by
/// 1e-3) — hence 1e-4 and 1e-2, while BatchNorm over the wrong groups differs by 1e-1.
/// And a 2-process run stopped and resumed equals an uninterrupted one, bit for bit.
#[test]
fn two_processes_train_as_one_with_the_same_global_batch_and_resume_exactly() {
    let runs = TinyRuns::new();
    let groups_of_8 = runs.config("groups.toml", "bn_group_size = 8\n");
    let mut previous = [(0.0, 0.0); 2];
    for steps in [1, 2] {
        let two = runs.train(&format!("two-{steps}"), steps, &["--nproc-per-node", "2"]);
        let one = runs.train(&format!("one-{steps}"), steps, &["--config", path(&groups_of_8)]);
        let tolerance = if steps == 1 { 1e-4 } else { 1e-2 };
        previous = assert_same_step((&two, &one), (steps, tolerance, false), previous);
    }
    // Without the matching BatchNorm groups the same step differs clearly: the check above
    // can fail.
    let whole_batch = runs.train("whole-1", 1, &[]);
    let (diff, _) = largest_difference(&runs.train("two-1b", 1, &["--nproc-per-node", "2"]), &whole_batch, true, false);
    assert!(diff > 1e-2, "BatchNorm over 16 instead of 8 samples should change the step ({diff})");

    // Stopped after 2 steps and resumed for 2 more = 4 steps at once.
    let uninterrupted = runs.train("straight", 4, &["--nproc-per-node", "2"]);
    let resumed_dir = runs.dir.path().join("two-2");
    bcl(&["train", "--resume", path(&resumed_dir), "--max-steps", "2", "--nproc-per-node", "2"]);
    let resumed = checkpoint::load(&resumed_dir.join("last.safetensors")).unwrap();
    for (a, b) in [(&uninterrupted.weights, &resumed.weights), (&uninterrupted.optimizer, &resumed.optimizer)] {
        assert_eq!(a.len(), b.len());
        for (name, t) in a {
            assert!(t.equal(&b[name]), "{name} differs after resuming");
        }
    }
    assert_eq!(uninterrupted.metadata["state"], resumed.metadata["state"]);

    // A 2-process checkpoint resumes on 1 process (any world size): it continues at step 4.
    let out = bcl(&["train", "--resume", path(&resumed_dir), "--max-steps", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stopped at epoch 1, step 5"), "{text}");
}

/// With `sync_batch_norm`, 2 processes need no BatchNorm groups to follow one process with
/// the whole batch of 16. SyncBatchNorm computes the statistics with other float32
/// operations than BatchNorm's kernel, and this model's gradients are ill-conditioned in
/// float32 (measured: plain BatchNorm's gradients differ from the float64 ones by up to 2%),
/// so this compares what a step does, not the gradients bit for bit. Measured after step 1:
/// losses within 4e-6, weights within 2.0e-3, running statistics within 7e-5 (relative);
/// 2 processes without SyncBatchNorm differ by 1.2e-2, 6.3e-2 and 4.3e-2.
/// `sync_batch_norm_on_two_ranks_is_batch_norm_over_the_whole_batch` checks the exact math.
#[test]
fn two_processes_with_sync_batch_norm_train_as_one_process_with_the_whole_batch() {
    let runs = TinyRuns::new();
    let sync = runs.config("sync.toml", "sync_batch_norm = true\n");
    let two = runs.train("sync", 1, &["--nproc-per-node", "2", "--config", path(&sync)]);
    let one = runs.train("whole", 1, &[]);
    let ((a_ce, a_cl), (b_ce, b_cl)) = (loss_sums(&two), loss_sums(&one));
    let loss_diff = ((a_ce - b_ce) / b_ce).abs().max(((a_cl - b_cl) / b_cl).abs());
    let (weights_diff, weights_name) = largest_difference(&two, &one, false, false);
    let (running_diff, running_name) = largest_difference(&two, &one, false, true);
    eprintln!(
        "losses {loss_diff:.1e}, weights {weights_diff:.1e} ({weights_name}), running statistics {running_diff:.1e} \
         ({running_name})"
    );
    assert!(loss_diff < 1e-4, "losses ({a_ce}, {a_cl}) vs ({b_ce}, {b_cl})");
    assert!(weights_diff < 1e-2, "{weights_name} differs by {weights_diff} (relative)");
    assert!(running_diff < 1e-3, "{running_name} differs by {running_diff} (relative)");
}

/// torchrun starts the ranks itself and its agent hosts the store on MASTER_PORT, so every
/// rank joins as a client (under a prefix per restart): the job trains exactly as with
/// `--nproc-per-node`, and rank 0 does not try to bind the agent's port.
#[test]
fn torchrun_launches_the_same_training_as_nproc_per_node() {
    let runs = TinyRuns::new();
    let ours = runs.train("ours", 1, &["--nproc-per-node", "2"]);
    let torchrun = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/torchrun");
    let out_dir = runs.dir.path().join("torchrun");
    let output = Command::new(&torchrun)
        .args(["--no-python", "--nproc-per-node", "2", "--master-port", &free_port().to_string()])
        .arg(env!("CARGO_BIN_EXE_bcl"))
        .args(runs.train_args(1))
        .args(["--out", path(&out_dir)])
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("the venv's torchrun (scripts/setup.sh installs torch there)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "torchrun failed:\n{}{stderr}", String::from_utf8_lossy(&output.stdout));
    assert!(!stderr.contains("failed to bind"), "{stderr}");
    let theirs = checkpoint::load(&out_dir.join("last.safetensors")).unwrap();
    for (name, t) in &ours.weights {
        assert!(t.equal(&theirs.weights[name]), "{name} differs between torchrun and --nproc-per-node");
    }
    assert_eq!(ours.metadata["state"], theirs.metadata["state"]);
}

/// Environment variables, extra arguments, and the error they must give.
type Mistake = (&'static [(&'static str, &'static str)], &'static [&'static str], &'static str);

/// Launcher mistakes name the variable or the number that is wrong.
#[test]
fn launcher_mistakes_are_clear_errors() {
    let data = tiny_fashion_mnist(20, 5);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let train = ["train", "--root", path(data.path()), "--imb-factor", "5", "--device", "cpu", "--max-steps", "1"];
    let cases: [Mistake; 5] = [
        (&[("WORLD_SIZE", "2")], &[], "WORLD_SIZE is set but RANK is not"),
        // Under srun, SLURM's own variables describe the ranks.
        (
            &[("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_PROCID", "2")],
            &[],
            "SLURM_PROCID=2 is not below SLURM_STEP_NUM_TASKS=2",
        ),
        (&[("WORLD_SIZE", "2"), ("RANK", "2")], &[], "RANK=2 is not below WORLD_SIZE=2"),
        (
            &[("WORLD_SIZE", "1"), ("RANK", "0")],
            &["--nproc-per-node", "2"],
            "--nproc-per-node with WORLD_SIZE already set",
        ),
        (
            &[],
            &["--nproc-per-node", "3", "--batch-size", "16"],
            "batch_size = 16 cannot be shared out over 3 processes",
        ),
    ];
    for (env, extra, expected) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bcl"));
        command.args(train).args(extra).args(["--out", path(&out_dir)]).env("RUST_BACKTRACE", "0");
        for name in
            ["WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID"]
        {
            command.env_remove(name);
        }
        let out = command.envs(env.iter().copied()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} {extra:?} must fail");
        assert!(stderr.contains(expected), "{env:?} {extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let _ = std::fs::remove_dir_all(&out_dir);
    }
}

/// A port already taken is one line naming the problem, without libtorch's C++ backtrace.
#[test]
fn a_taken_port_is_a_short_error() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = Store::connect("127.0.0.1", port, (0, 2), Duration::from_secs(5), None).err().unwrap();
    let message = format!("{error:#}");
    assert!(message.contains("address already in use"), "{message}");
    assert!(!message.contains("Exception raised from") && !message.contains("frame #"), "{message}");
}

/// Rank k takes GPU k when it sees every GPU, and the GPU it sees when a launcher gives each
/// process its own (CUDA_VISIBLE_DEVICES per task).
#[test]
fn each_rank_takes_the_gpu_it_can_see() {
    use bcl::distributed::gpu_of;
    assert_eq!((0..4).map(|rank| gpu_of(rank, 4)).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!((0..4).map(|rank| gpu_of(rank, 1)).collect::<Vec<_>>(), [0, 0, 0, 0]);
    assert_eq!((0..4).map(|rank| gpu_of(rank, 2)).collect::<Vec<_>>(), [0, 1, 0, 1]);
    assert_eq!(gpu_of(3, 0), 0, "no GPU counted: the first");
}
