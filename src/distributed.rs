//! Data-parallel training over libtorch's c10d: one process per GPU, launched like
//! `torchrun` launches PyTorch (the same environment variables), meeting at c10d's
//! `TCPStore`, exchanging tensors through NCCL on GPUs.
//!
//! The semantics are those of one process with the same global batch:
//! - each rank trains on its slice of every global batch ([`crate::loader`] shards);
//! - gradients are averaged over the ranks, a few large buckets at a time;
//! - the contrastive loss contrasts every anchor against the whole global batch
//!   ([`gathered_loss`]), so rare classes keep the positives other ranks hold.
//!
//! On the CPU the collectives go through the store itself: slow but exact, for tests of
//! the multi-process logic on machines without GPUs. It is never used on GPUs.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tch::{Device, Kind, Tensor};

use crate::c10d::{NcclGroup, Store, SumInPlace};
use crate::checkpoint::bytes_of;

/// Gradient bytes per all-reduce (PyTorch DDP's default bucket is 25 MB).
const BUCKET_BYTES: i64 = 25 << 20;

/// How long a rank waits for the others at any one exchange (rank 0 evaluates the test set
/// while the others wait).
const TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// This process's place among the training processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    pub rank: usize,
    pub world_size: usize,
    /// Rank on this machine: the GPU this process uses.
    pub local_rank: usize,
    /// Where rank 0 (or the launcher) hosts the store.
    pub master_addr: String,
    pub master_port: u16,
    /// Set when the launcher hosts the store (torchrun's agent does, and says so in
    /// `TORCHELASTIC_USE_AGENT_STORE`): the keys' prefix, fresh for each restart of the job,
    /// so that a restarted job never reads the keys of the attempt before.
    pub launcher_store_prefix: Option<String>,
}

impl World {
    /// The world `torchrun` (or `bcl train --nproc-per-node`, Kubernetes wrappers)
    /// describes in `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT`, or,
    /// when `WORLD_SIZE` is not set, SLURM's `srun` in `SLURM_PROCID`,
    /// `SLURM_STEP_NUM_TASKS` and `SLURM_LOCALID`; `None` for a single process.
    pub fn from_env() -> Result<Option<World>> {
        let var = |name: &str| std::env::var(name).ok();
        // SLURM's srun describes its tasks itself: SLURM_STEP_NUM_TASKS is set for the
        // tasks of a job step only (not for a batch script that runs bcl once).
        let slurm = var("SLURM_STEP_NUM_TASKS").filter(|n| n.trim() != "1");
        let (size_var, rank_var, local_var) = match (var("WORLD_SIZE"), slurm) {
            (None, Some(_)) => {
                let nodes = var("SLURM_STEP_NUM_NODES").and_then(|n| n.trim().parse::<usize>().ok()).unwrap_or(1);
                ensure!(
                    nodes == 1 || var("MASTER_ADDR").is_some(),
                    "srun started this step on {nodes} nodes: set MASTER_ADDR to the first one's address \
                     (and MASTER_PORT), e.g. MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1)"
                );
                ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID")
            }
            _ => ("WORLD_SIZE", "RANK", "LOCAL_RANK"),
        };
        let Some(world_size) = var(size_var) else { return Ok(None) };
        let number = |name: &str, value: Option<String>, default: Option<&str>| -> Result<usize> {
            let text = value
                .or(default.map(str::to_string))
                .with_context(|| format!("{size_var} is set but {name} is not"))?;
            text.trim().parse().with_context(|| format!("{name}={text:?} is not a number"))
        };
        let world_size = number(size_var, Some(world_size), None)?;
        let rank = number(rank_var, var(rank_var), None)?;
        let local_rank = number(local_var, var(local_var), Some("0"))?;
        let master_port = number("MASTER_PORT", var("MASTER_PORT"), Some("29500"))?;
        ensure!(world_size >= 1, "{size_var} must be at least 1");
        ensure!(rank < world_size, "{rank_var}={rank} is not below {size_var}={world_size}");
        ensure!(master_port <= u16::MAX as usize, "MASTER_PORT={master_port} is not a port");
        let launcher_store_prefix = (var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True")).then(|| {
            let run = var("TORCHELASTIC_RUN_ID").unwrap_or_default();
            let attempt = var("TORCHELASTIC_RESTART_COUNT").unwrap_or_default();
            format!("bcl/{run}/attempt_{attempt}/")
        });
        Ok(Some(World {
            rank,
            world_size,
            local_rank,
            master_addr: var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
            master_port: master_port as u16,
            launcher_store_prefix,
        }))
    }
}

enum Backend {
    /// NCCL on this process's GPU.
    Nccl(NcclGroup, Device),
    /// Collectives as store writes and reads (CPU tests only).
    Store,
}

/// The training processes, joined. Shared (`Arc`) with the autograd graphs of
/// SyncBatchNorm, whose backward pass sums over the ranks too.
pub struct Group {
    pub world: World,
    store: Store,
    backend: Backend,
    /// Number of store exchanges so far: each uses fresh keys.
    exchanges: AtomicU64,
}

impl Group {
    /// Meets the other ranks at rank 0's store; uses NCCL when `device` is a GPU.
    pub fn join(world: World, device: Device) -> Result<Group> {
        let store = Store::connect(
            &world.master_addr,
            world.master_port,
            (world.rank, world.world_size),
            TIMEOUT,
            world.launcher_store_prefix.as_deref(),
        )?;
        let backend = match device {
            Device::Cuda(index) => {
                Backend::Nccl(NcclGroup::new(&store, world.rank, world.world_size, index, TIMEOUT)?, device)
            }
            _ => Backend::Store,
        };
        Ok(Group { world, store, backend, exchanges: AtomicU64::new(0) })
    }

    pub fn rank(&self) -> usize {
        self.world.rank
    }

    pub fn world_size(&self) -> usize {
        self.world.world_size
    }

    /// Rank 0 writes the logs and checkpoints and evaluates.
    pub fn is_primary(&self) -> bool {
        self.world.rank == 0
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Nccl(..) => "nccl",
            Backend::Store => "store (CPU)",
        }
    }

    /// Every rank's `bytes`, in rank order, through the store. A rank deletes its key of the
    /// previous exchange once this one completes: every rank has read it by then.
    fn exchange(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        let n = self.exchanges.fetch_add(1, Ordering::SeqCst) + 1;
        let key = |n: u64, rank: usize| format!("bcl/x/{n}/{rank}");
        self.store.set(&key(n, self.rank()), bytes)?;
        let all = (0..self.world_size()).map(|r| self.store.get(&key(n, r))).collect::<Result<Vec<_>>>()?;
        if n > 1 {
            self.store.delete(&key(n - 1, self.rank()))?;
        }
        Ok(all)
    }

    /// Ends this rank's part of the job. Rank 0 hosts the store, so it waits until every
    /// rank is done with it (the others may still be reading the last exchange).
    pub fn finish(&self) -> Result<()> {
        const KEY: &str = "bcl/finished";
        self.store.add(KEY, 1)?;
        if self.is_primary() {
            let start = std::time::Instant::now();
            while self.store.add(KEY, 0)? < self.world_size() as i64 {
                ensure!(start.elapsed() < TIMEOUT, "the other ranks did not finish within {TIMEOUT:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Rank 0's `bytes` on every rank (the others pass anything).
    pub fn broadcast_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut all = self.exchange(if self.is_primary() { bytes } else { &[] })?;
        Ok(all.swap_remove(0))
    }

    /// In place: the element-wise sum over the ranks.
    pub fn all_reduce_sum(&self, tensor: &Tensor) -> Result<()> {
        match &self.backend {
            Backend::Nccl(group, device) => on_device(tensor, *device, |t| group.all_reduce_sum(t)),
            Backend::Store => {
                // Every rank adds the same values in the same (rank) order: equal results.
                let parts = self.exchange(&bytes_of(tensor))?;
                let mut sum = from_bytes(&parts[0], tensor)?;
                for part in &parts[1..] {
                    sum += from_bytes(part, tensor)?;
                }
                tensor.shallow_clone().copy_(&sum);
                Ok(())
            }
        }
    }

    /// Every rank's `tensor` (same shape on each), concatenated along dimension 0 in rank
    /// order.
    pub fn all_gather(&self, tensor: &Tensor) -> Result<Tensor> {
        match &self.backend {
            Backend::Nccl(group, device) => {
                let mut shape = tensor.size();
                shape[0] *= self.world_size() as i64;
                let output = Tensor::empty(&shape, (tensor.kind(), *device));
                group.all_gather(&output, &tensor.to_device(*device).contiguous())?;
                Ok(output.to_device(tensor.device()))
            }
            Backend::Store => {
                let parts = self.exchange(&bytes_of(tensor))?;
                let parts = parts.iter().map(|part| from_bytes(part, tensor)).collect::<Result<Vec<_>>>()?;
                Ok(Tensor::cat(&parts, 0))
            }
        }
    }

    /// In place: rank 0's values on every rank.
    pub fn broadcast(&self, tensor: &Tensor) -> Result<()> {
        match &self.backend {
            Backend::Nccl(group, device) => on_device(tensor, *device, |t| group.broadcast(t, 0)),
            Backend::Store => {
                let primary = self.broadcast_bytes(&if self.is_primary() { bytes_of(tensor) } else { Vec::new() })?;
                tensor.shallow_clone().copy_(&from_bytes(&primary, tensor)?);
                Ok(())
            }
        }
    }

    /// Replaces each gradient by its mean over the ranks: one all-reduce per bucket of
    /// about 25 MB of gradients of one dtype, not one per tensor.
    pub fn average_gradients(&self, parameters: &[(String, Tensor)]) -> Result<()> {
        if self.world_size() == 1 {
            return Ok(());
        }
        let grads: Vec<Tensor> = parameters.iter().map(|(_, p)| p.grad()).filter(Tensor::defined).collect();
        let mut start = 0;
        while start < grads.len() {
            let (kind, mut bytes, mut end) = (grads[start].kind(), 0, start);
            while end < grads.len() && grads[end].kind() == kind && (end == start || bytes < BUCKET_BYTES) {
                bytes += grads[end].numel() as i64 * kind.elt_size_in_bytes() as i64;
                end += 1;
            }
            let bucket = &grads[start..end];
            let flat = Tensor::cat(&bucket.iter().map(|g| g.reshape([-1])).collect::<Vec<_>>(), 0);
            self.all_reduce_sum(&flat)?;
            let flat = flat / self.world_size() as f64;
            let mut offset = 0;
            for grad in bucket {
                let n = grad.numel() as i64;
                grad.shallow_clone().copy_(&flat.narrow(0, offset, n).view_as(grad));
                offset += n;
            }
            start = end;
        }
        Ok(())
    }
}

impl SumInPlace for Group {
    fn sum_in_place(&self, tensor: &Tensor) -> Result<()> {
        self.all_reduce_sum(tensor)
    }
}

/// A contrastive loss over the global batch, for this process's anchors; without a group
/// (or with one process) the batch is the global batch.
///
/// `z1`, `z2` (B × D) are this process's two views' features and `labels` its B labels;
/// `loss(views, view_labels, anchor_rows)` is the loss of the anchors `anchor_rows` of
/// `views` (the global batch's view-1 rows, then its view-2 rows), as
/// [`crate::loss::BalancedContrastiveLoss::forward`].
///
/// Returns this rank's loss value (the global loss is their mean over the ranks) and a
/// surrogate to call `backward` on: other ranks' features enter this rank's loss as
/// constants, so the gradient that this rank's features receive from the other ranks'
/// losses is all-reduced here and added through ⟨z, g⟩. With gradients then averaged over
/// the ranks, every parameter gets exactly the gradient of the global loss.
pub fn gathered_loss(
    group: Option<&Group>,
    z1: &Tensor,
    z2: &Tensor,
    labels: &Tensor,
    loss: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
) -> Result<(Tensor, Tensor)> {
    let labels = labels.to_kind(Kind::Int64);
    let b = z1.size()[0];
    let Some(group) = group.filter(|g| g.world_size() > 1) else {
        let view_labels = Tensor::cat(&[&labels, &labels], 0);
        let value = loss(&Tensor::cat(&[z1, z2], 0), &view_labels, &Tensor::arange(2 * b, (Kind::Int64, z1.device())));
        return Ok((value.shallow_clone(), value));
    };
    let (world, rank) = (group.world_size() as i64, group.rank() as i64);
    let n = world * b;
    let all_labels = group.all_gather(&labels)?;
    let view_labels = Tensor::cat(&[&all_labels, &all_labels], 0);
    let own = |first: i64| Tensor::arange_start(first, first + b, (Kind::Int64, z1.device()));
    let anchor_rows = Tensor::cat(&[own(rank * b), own(n + rank * b)], 0);
    // The global views as a leaf (gradients collected for the other ranks' rows) with this
    // rank's rows replaced by its own live features.
    let others =
        Tensor::cat(&[group.all_gather(&z1.detach())?, group.all_gather(&z2.detach())?], 0).set_requires_grad(true);
    let views = Tensor::cat(
        &[
            others.narrow(0, 0, rank * b),
            z1.shallow_clone(),
            others.narrow(0, (rank + 1) * b, n - b),
            z2.shallow_clone(),
            others.narrow(0, n + (rank + 1) * b, n - (rank + 1) * b),
        ],
        0,
    );
    let value = loss(&views, &view_labels, &anchor_rows);
    let grad_others = Tensor::run_backward(&[&value], &[&others], true, false).swap_remove(0);
    group.all_reduce_sum(&grad_others)?;
    let from_others = |first: i64, z: &Tensor| (z * grad_others.narrow(0, first, b).detach()).sum(z.kind());
    let surrogate = &value + from_others(rank * b, z1) + from_others(n + rank * b, z2);
    Ok((value, surrogate))
}

/// Joins the job a launcher describes in the environment ([`World::from_env`]), if any.
/// Returns the device this process trains on (when `device` is a GPU, [`gpu_of`] its local
/// rank) and the group, `None` for a run without a launcher.
pub fn join_from_env(device: Device) -> Result<(Device, Option<Arc<Group>>)> {
    let Some(world) = World::from_env()? else { return Ok((device, None)) };
    let device = match device {
        Device::Cuda(_) => Device::Cuda(gpu_of(world.local_rank, tch::Cuda::device_count() as usize)),
        other => other,
    };
    Ok((device, Some(Arc::new(Group::join(world, device)?))))
}

/// The GPU of the rank with `local_rank` among `visible` GPUs: its own when it sees them
/// all, the one it sees when a launcher gives each process one (SLURM `--gpus-per-task`
/// sets `CUDA_VISIBLE_DEVICES` per task), and in general `local_rank mod visible`.
pub fn gpu_of(local_rank: usize, visible: usize) -> usize {
    local_rank % visible.max(1)
}

/// Runs the in-place collective `f` on `tensor`, through a copy on `device` if it is
/// elsewhere (NCCL works on GPU memory only).
fn on_device(tensor: &Tensor, device: Device, f: impl FnOnce(&Tensor) -> Result<()>) -> Result<()> {
    if tensor.device() == device && tensor.is_contiguous() {
        return f(tensor);
    }
    let copy = tensor.to_device(device).contiguous();
    f(&copy)?;
    tensor.shallow_clone().copy_(&copy);
    Ok(())
}

/// `bytes` from another rank as a tensor shaped, typed and placed like `like`.
fn from_bytes(bytes: &[u8], like: &Tensor) -> Result<Tensor> {
    let expected = like.numel() * like.kind().elt_size_in_bytes();
    if bytes.len() != expected {
        bail!("a rank sent {} bytes where {expected} were expected: the ranks are out of step", bytes.len());
    }
    Ok(Tensor::f_from_data_size(bytes, &like.size(), like.kind())?.to_device(like.device()))
}
