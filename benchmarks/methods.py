"""One benchmark for every method: training steps and inference at the paper's resolution.

    python benchmarks/methods.py [--device cpu|cuda] [--batch N] [--iters N] [--warmup N]
                                 [--methods supervised-city,s4mc,...] [--amp bf16]
                                 [--channels-last] [--compile] [--quick] [--out benchmarks/results]

For each method the LightningModule is built from the repository's Hydra configs (``conf/train.yaml``
composed with the method's paper experiment, ``hydra.utils.instantiate(cfg.method)``, the way
``train.py`` builds it; no weights are loaded) and fed random tensors shaped like the method's
batches at the paper's resolution (the reference configs; docs/REFERENCES.md):

================  ===============================================  ===============  ==============
row               experiment                                       training input   inference input
================  ===============================================  ===============  ==============
supervised-city   supervised_deeplabv3plus-r101-d8_cityscapes-769  769×769 crops    769×769 (one
                                                                                    sliding window)
supervised-voc    supervised_deeplabv3plus-r101-d8_voc-513x513     513×513          513×513
s4mc              s4mc_deeplabv3plus-r101-d8_voc-513x513           513×513 labeled  513×513
                                                                   + unlabeled
s4mc-city         s4mc_deeplabv3plus-r101-d8_cityscapes-769x769    769×769 labeled  769×769
                                                                   + unlabeled
depthmix          depthmix_depthseg-r101-d16_cityscapes-semi-512   512×512 labeled  512×1024
                                                                   + unlabeled
byol              byol_r50_cityscapes-unlabeled-224x224            2 views 224×224  224×224
ssenet            ssenet_cam-resnet38-d8_voc-448x448               448×448 + 0.3×   448×448
s5                s5_deeplabv3-hrnetw48_cityscapes-binary-512x1024 1024×2048 frame, same
                                                                   net at 512×1024
ssdepth           ssdepth_depthnet-r101-d16_cityscapes-sequence    3 frames 512×512 512×1024
================  ===============================================  ===============  ==============

Training: ``--warmup`` + ``--iters`` optimiser steps through a Lightning ``Trainer`` (the method's
own ``training_step``, optimiser, schedule and callbacks such as the EMA teacher; S4MC without the
supervised-only warm-up and with a per-step DPA schedule, so every step is a full S4MC step);
images/s = ``iters · batch`` / time of the timed steps (S4MC counts labeled + unlabeled images,
BYOL one image per two-view sample, the depth method one sample of 3 frames). Inference: ``--iters`` forward passes in eval mode
under ``torch.inference_mode`` after one warm-up pass.

Memory: on CUDA ``torch.cuda.max_memory_allocated`` during the phase; on CPU the growth of the
process's peak resident set (VmHWM, reset through ``/proc/self/clear_refs`` before each phase
where the kernel allows it) over the resident set at the start of the phase.

TFLOP/s (CUDA only): FLOPs of one training step (forward + backward) and of one inference pass,
counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix multiplications and
convolutions), divided by the measured time per step; the device peak comes from a small table
(dense bf16 with ``--amp bf16``, else TF32/FP32), "unknown" for other devices.

Writes ``<out>/methods_<device>.json`` and ``.md`` atomically and prints the markdown table.
``--quick``: tiny inputs (64-pixel sides), batch 2, 1 step after 1 warm-up — a smoke test of the
code path, not a measurement. Results are machine-specific; the device is recorded with them.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from leseg.data.datamodules import collate_samples
from leseg.tasks.speed import apply_speed
from leseg.utils.io import atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[1]


def _sibling(name: str) -> Any:
    """The benchmark script ``benchmarks/<name>.py`` as a module (they are not a package)."""
    import importlib.util

    module_name = f"_leseg_benchmark_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


_Views = _sibling("byol")._Views  # two random views per sample
_sync, _Timer = _sibling("run")._sync, _sibling("run")._Timer  # CUDA sync; time after warm-up
make_batch = _sibling("s4mc_step").make_batch  # labeled + unlabeled batches, a padded band

#: dense peak TFLOP/s per device-name fragment: (bf16, tf32, fp32). Vendor data sheets (SXM parts).
PEAK_TFLOPS: dict[str, tuple[float, float, float]] = {
    "H200": (989.0, 494.0, 67.0),
    "H100": (989.0, 494.0, 67.0),
    "A100": (312.0, 156.0, 19.5),
    "L40S": (362.0, 183.0, 91.6),
    "A10G": (70.0, 35.0, 31.2),
    "V100": (125.0, 15.7, 15.7),  # fp16 tensor cores (no bf16)
}


@dataclass
class Method:
    """How to benchmark one method.

    Attributes:
        experiment: the paper experiment under ``conf/experiment`` (composed with ``train``).
        train_size, infer_size: (H, W) of the training batch images and the inference input.
        images: images per sample counted for images/s (S4MC: labeled + unlabeled = 2).
        gpu_batch: default per-device batch on CUDA (2 on CPU).
        overrides: extra Hydra overrides (benchmark-only: e.g. no supervised warm-up).
        note: what one "image" is, for the table.
    """

    experiment: str
    train_size: tuple[int, int]
    infer_size: tuple[int, int]
    images: int = 1
    gpu_batch: int = 8
    overrides: list[str] = field(default_factory=list)
    note: str = ""


METHODS: dict[str, Method] = {
    "supervised-city": Method("supervised_deeplabv3plus-r101-d8_cityscapes-769x769", (769, 769),
                              (769, 769), note="crop 769; inference = one sliding window"),
    "supervised-voc": Method("supervised_deeplabv3plus-r101-d8_voc-513x513", (513, 513),
                             (513, 513), note="crop 513"),
    "s4mc": Method("s4mc_deeplabv3plus-r101-d8_voc-513x513", (513, 513), (513, 513), images=2,
                   overrides=["method.sup_only_epochs=0", "method.dpa_schedule=step",
                              "method.prior=" + str([0.97] * 21)],
                   note="labeled + unlabeled crop 513, CutMix, EMA teacher"),
    "s4mc-city": Method("s4mc_deeplabv3plus-r101-d8_cityscapes-769x769", (769, 769), (769, 769),
                        images=2, overrides=["method.sup_only_epochs=0", "method.dpa_schedule=step",
                                             "method.prior=" + str([0.97] * 19)],
                        note="labeled + unlabeled crop 769, CutMix, EMA teacher"),
    "byol": Method("byol_r50_cityscapes-unlabeled-224x224", (224, 224), (224, 224), gpu_batch=64,
                   note="one sample = 2 views 224"),
    "ssenet": Method("ssenet_cam-resnet38-d8_voc-448x448", (448, 448), (448, 448),
                     note="crop 448 + its 0.3x copy, L_eq"),
    "s5": Method("s5_deeplabv3-hrnetw48_cityscapes-binary-512x1024", (1024, 2048), (1024, 2048),
                 gpu_batch=2, note="1024x2048 frame, net input 512x1024 (block suggestion)"),
    "depthmix": Method("depthmix_depthseg-r101-d16_cityscapes-semi-512x512", (512, 512),
                       (512, 1024), images=2, gpu_batch=4,
                       note="labeled + unlabeled crop 512, DepthMix with the frozen depth net "
                            "(random weights), EMA teacher; inference 512x1024"),
    "ssdepth": Method("ssdepth_depthnet-r101-d16_cityscapes-sequence-512x512", (512, 512),
                      (512, 1024), gpu_batch=4, note="3 frames 512x512; inference 512x1024"),
}


# --------------------------------------------------------------------------- building
def build_module(method: Method, extra: list[str] | None = None) -> tuple[L.LightningModule, Any]:
    """``(module, cfg)``: ``conf/train.yaml`` + ``experiment=<method.experiment>``, instantiated."""
    import hydra
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from leseg.utils.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={method.experiment}", "logger=none",
                                          *method.overrides, *(extra or [])])
    GlobalHydra.instance().clear()
    return hydra.utils.instantiate(cfg.method), cfg


class _Repeat(Dataset):
    """``n`` references to one pre-made sample (collated by the method's batch layout)."""

    def __init__(self, sample: dict, n: int) -> None:
        self.sample, self.n = sample, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return self.sample


def _intrinsics(h: int, w: int) -> torch.Tensor:
    """(3, 3) pinhole intrinsics of an h × w Cityscapes-like frame (fx = fy ≈ w, centre)."""
    return torch.tensor([[1.1 * w, 0.0, w / 2], [0.0, 1.1 * w, h / 2], [0.0, 0.0, 1.0]])


def make_loader(name: str, cfg: Any, batch: int, size: tuple[int, int], n_batches: int) -> DataLoader:
    """Random batches in ``name``'s layout at (H, W) = ``size``; ``n_batches`` of ``batch``."""
    h, w = size
    g = torch.Generator().manual_seed(0)
    k = int(cfg.data.num_classes)
    n = batch * n_batches
    if name == "byol":
        return DataLoader(_Views(n, h), batch_size=batch, drop_last=True, collate_fn=collate_samples)
    if name in ("s4mc", "s4mc-city"):
        labeled, unlabeled = make_batch(batch, h, w, "cpu")
        lbl = labeled["label"]
        labeled["label"] = torch.where(lbl == 255, lbl, lbl % k)  # make_batch draws 21 classes

        class _Pairs(Dataset):
            def __len__(self) -> int:
                return n_batches

            def __getitem__(self, i: int) -> dict:
                return {"labeled": labeled, "unlabeled": unlabeled}

        return DataLoader(_Pairs(), batch_size=None)
    if name == "depthmix":
        pair = {"labeled": {"image": torch.randn(batch, 3, h, w, generator=g),
                            "label": torch.randint(0, k, (batch, h, w), generator=g)},
                "unlabeled": {"image": torch.randn(batch, 3, h, w, generator=g),
                              "valid": torch.ones(batch, h, w, dtype=torch.bool)}}

        class _DepthMixPairs(Dataset):
            def __len__(self) -> int:
                return n_batches

            def __getitem__(self, i: int) -> dict:
                return pair

        return DataLoader(_DepthMixPairs(), batch_size=None)
    if name == "ssdepth":
        sample = {"frames": torch.rand(3, 3, h, w, generator=g), "intrinsics": _intrinsics(h, w)}
    elif name == "ssenet":
        classes = torch.zeros(k - 1)
        classes[torch.randperm(k - 1, generator=g)[:2]] = 1.0  # two classes present
        sample = {"image": torch.randn(3, h, w, generator=g), "class_labels": classes,
                  "label": torch.randint(0, k, (h, w), generator=g)}
    elif name == "s5":
        label = torch.zeros(h, w, dtype=torch.int64)
        label[h // 4:h // 2, w // 4:w // 2] = 1  # one foreground object of the chosen class
        sample = {"image": torch.randn(3, h, w, generator=g), "label": label, "name": "bench"}
    else:
        sample = {"image": torch.randn(3, h, w, generator=g),
                  "label": torch.randint(0, k, (h, w), generator=g)}
    return DataLoader(_Repeat(sample, n), batch_size=batch, drop_last=True,
                      collate_fn=collate_samples)


def inference_fn(name: str, module: L.LightningModule, batch: int, size: tuple[int, int],
                 device: str) -> Callable[[], Any]:
    """A closure running one eval-mode forward pass of ``name`` on a random (batch, 3, H, W)."""
    h, w = size
    x = torch.randn(batch, 3, h, w, device=device)
    if name == "s5":  # the network sees image ⧺ suggestion, resized by input_scale
        label = torch.zeros(batch, h, w, dtype=torch.int64, device=device)
        label[:, h // 4:h // 2, w // 4:w // 2] = 1
        sugg = module.make_suggestions(label, [f"bench_{i}" for i in range(batch)], training=False)
        return lambda: module.net(module.net_input(x, sugg))
    if name == "ssdepth":
        return lambda: module.predict_depth(x.clamp(0, 1))
    return lambda: module(x)


# ------------------------------------------------------------------------ measuring
def _rss_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Peak memory of a phase: CUDA allocator peak, or CPU peak-RSS growth (MiB)."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            with contextlib.suppress(OSError):  # resets VmHWM to the current RSS
                Path("/proc/self/clear_refs").write_text("5")
            self.base = _rss_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
            self.mib = self.peak / 2**20  # CUDA: the allocator's absolute peak
        else:
            self.peak = _rss_kib("VmHWM") * 1024
            self.mib = max(0, self.peak - self.base) / 2**20


class _FlopStep(L.Callback):
    """Count the FLOPs of training batch ``index`` (forward + backward, one step)."""

    def __init__(self, index: int) -> None:
        self.index, self.flops, self._mode = index, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: D102
        if batch_idx == self.index:
            from torch.utils.flop_counter import FlopCounterMode

            self._mode = FlopCounterMode(display=False)
            self._mode.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.flops = self._mode.get_total_flops()
            self._mode = None


class _ProfileSteps(L.Callback):
    """torch.profiler over training steps [start, start + n) (warm-up steps, so the timed steps
    are not slowed); writes the top operators by device (else CPU) time to ``path``."""

    def __init__(self, start: int, n: int, path: Path) -> None:
        self.start, self.n, self.path, self.prof = start, n, path, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: D102
        if batch_idx == self.start:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                             if torch.cuda.is_available() else [])
            self.prof = profile(activities=acts, record_shapes=False)
            self.prof.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        if self.prof is not None and batch_idx == self.start + self.n - 1:
            _sync(str(pl_module.device))
            self.prof.__exit__(None, None, None)
            key = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(f"{self.n} training steps from step {self.start}, by {key}\n"
                                 + self.prof.key_averages().table(sort_by=key, row_limit=25))
            self.prof = None


def device_peak_tflops(device: str, amp: str | None) -> float | None:
    """Dense peak TFLOP/s of the CUDA device for the precision used, None if not in the table."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    for key, (bf16, tf32, fp32) in PEAK_TFLOPS.items():
        if key in name:
            if amp == "bf16":
                return bf16
            return tf32 if torch.backends.cuda.matmul.allow_tf32 else fp32
    return None


def bench_method(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train and inference figures of one method (see the module docstring)."""
    method = METHODS[name]
    device = args.device
    gpu = device.startswith("cuda")
    batch = args.batch or (method.gpu_batch if gpu else 2)
    if name in ("byol", "s4mc", "s4mc-city"):
        batch = max(batch, 2)  # BatchNorm in BYOL's MLPs / CutMix partners need 2 per device
    train_size = (64, 64) if args.quick else method.train_size
    infer_size = (64, 64) if args.quick else method.infer_size
    if args.quick and name == "s5":
        train_size = infer_size = (64, 128)
    precision = "bf16-mixed" if args.amp == "bf16" else "32-true"
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as weights_dir:
        extra = []
        if name == "depthmix":  # DepthMix needs a depth checkpoint: random weights of its shape
            from leseg.models.depth import DepthNet

            weights = Path(weights_dir) / "depth.pt"
            depth = DepthNet("resnet101", decoder_channels=(64, 128, 128, 256, 256))
            torch.save({f"net.{k}": v for k, v in depth.state_dict().items()}, weights)
            del depth
            extra = [f"method.depth_net.weights={weights}"]
        module, cfg = build_module(method, extra)
    apply_speed(module, {"channels_last": args.channels_last, "compile": args.compile})
    row: dict[str, Any] = {"method": name, "experiment": method.experiment, "batch": batch,
                           "train_size": f"{train_size[0]}x{train_size[1]}",
                           "infer_size": f"{infer_size[0]}x{infer_size[1]}", "note": method.note}

    # ---- training: warmup + iters steps through Lightning
    steps = args.warmup + args.iters
    timer = _Timer(args.warmup)
    flop_step = _FlopStep(max(0, args.warmup - 1)) if gpu else None
    profile = (_ProfileSteps(max(0, args.warmup - 3), 2, args.out / f"profile_{name}.txt")
               if args.profile and args.warmup >= 3 else None)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(accelerator="gpu" if gpu else "cpu", devices=1, max_steps=steps,
                            max_epochs=-1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[timer] + ([flop_step] if flop_step else [])
                            + ([profile] if profile else []),
                            limit_val_batches=0, num_sanity_val_steps=0, precision=precision,
                            accumulate_grad_batches=1, default_root_dir=tmp)
        loader = make_loader(name, cfg, batch, train_size, steps)
        with PeakMemory(device) as mem:
            trainer.fit(module, train_dataloaders=loader)
    seconds = (timer.end - timer.start) / max(timer.steps, 1)
    row["train_img_s"] = batch * method.images / seconds
    row["train_step_s"] = seconds
    row["train_mem_mib"] = mem.mib
    if flop_step is not None and flop_step.flops:
        row["train_tflop_per_step"] = flop_step.flops / 1e12
        row["train_tflops"] = flop_step.flops / seconds / 1e12

    # ---- inference: eval mode, inference_mode, 1 warm-up pass
    module = module.to(device).eval()
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if gpu and args.amp == "bf16"
                else contextlib.nullcontext())
    infer = inference_fn(name, module, batch, infer_size, device)

    def run() -> None:
        with torch.inference_mode(), autocast:
            infer()

    with PeakMemory(device) as mem:
        run()
        if gpu:
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                run()
            flops = counter.get_total_flops()
        _sync(device)
        start = time.perf_counter()
        for _ in range(args.iters):
            run()
        _sync(device)
        seconds = (time.perf_counter() - start) / args.iters
    row["infer_img_s"] = batch / seconds
    row["infer_mem_mib"] = mem.mib
    if gpu:
        row["infer_tflops"] = flops / seconds / 1e12
    if profile is not None and profile.path.exists():
        row["profile"] = str(profile.path.relative_to(REPO) if profile.path.is_relative_to(REPO)
                             else profile.path)
    peak = args.peak_tflops or device_peak_tflops(device, args.amp)
    row["peak_tflops"] = peak if peak is not None else "unknown"
    for key in ("train", "infer"):
        if peak and f"{key}_tflops" in row:
            row[f"{key}_mfu"] = row[f"{key}_tflops"] / peak
    del module, trainer
    if gpu:
        torch.cuda.empty_cache()
    return row


# --------------------------------------------------------------------------- report
def environment(args: argparse.Namespace) -> dict[str, Any]:
    """Device, software and settings recorded with the results."""
    gpu = args.device.startswith("cuda")
    return {"device": (torch.cuda.get_device_name() if gpu
                       else f"CPU ({platform.processor() or platform.machine()})"),
            "torch": torch.__version__, "lightning": L.__version__,
            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M"),
            "amp": args.amp or "fp32", "channels_last": bool(args.channels_last),
            "compile": bool(args.compile), "iters": args.iters, "warmup": args.warmup,
            "quick": bool(args.quick)}


def _fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "-"
    return "-" if value is None else str(value)


def to_markdown(results: dict[str, Any]) -> str:
    """The results as one markdown table with the environment in a caption line."""
    env = results["environment"]
    gpu = env["device"] and not env["device"].startswith("CPU")
    lines = [f"Device: **{env['device']}**, torch {env['torch']}, {env['threads']} threads, "
             f"{env['amp']}{', channels-last' if env['channels_last'] else ''}"
             f"{', compiled' if env['compile'] else ''}; {env['iters']} timed steps after "
             f"{env['warmup']}; {env['date']}{' (--quick: not a measurement)' if env['quick'] else ''}.",
             ""]
    mem = "peak mem (MiB)" if gpu else "peak RSS growth (MiB)"
    head = ["method", "batch", "train input", "train img/s", f"train {mem}", "infer input",
            "infer img/s", f"infer {mem}"]
    if gpu:
        head += ["train TFLOP/s", "infer TFLOP/s", "peak TFLOP/s", "train MFU"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results["methods"]:
        if "error" in r:
            lines.append(f"| {r['method']} | error: {r['error']} |")
            continue
        cells = [r["method"], str(r["batch"]), r["train_size"], _fmt(r["train_img_s"]),
                 _fmt(r["train_mem_mib"], 0), r["infer_size"], _fmt(r["infer_img_s"]),
                 _fmt(r["infer_mem_mib"], 0)]
        if gpu:
            mfu = r.get("train_mfu")
            cells += [_fmt(r.get("train_tflops"), 1), _fmt(r.get("infer_tflops"), 1),
                      _fmt(r.get("peak_tflops")), f"{100 * mfu:.0f} %" if mfu else "-"]
            if mfu is not None and mfu < 0.15 and r.get("profile"):
                cells[-1] += f" (< 15 %: profile `{r['profile']}`)"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Rows: " + "; ".join(f"{r['method']}: {r.get('note', '')}"
                                       for r in results["methods"]) + "."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python benchmarks/methods.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        choices=("cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=None,
                        help="per-device batch (default: 2 on CPU, the method's gpu_batch on CUDA)")
    parser.add_argument("--iters", type=int, default=None, help="timed steps (default 3 CPU, 20 CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 1 CPU, 5 CUDA)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument("--amp", choices=("bf16",), default=None, help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--quick", action="store_true", help="tiny inputs: a smoke test")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="device peak TFLOP/s for the MFU column (default: the data-sheet "
                             "table PEAK_TFLOPS)")
    parser.add_argument("--profile", action="store_true",
                        help="torch.profiler over 2 warm-up steps (needs --warmup >= 3); the "
                             "top operators go to <out>/profile_<method>.txt")
    args = parser.parse_args(argv)
    unknown = [m for m in args.methods.split(",") if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {list(METHODS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be >= 1")
    gpu = args.device == "cuda"
    if args.quick:
        args.batch = args.batch or 2
        args.iters, args.warmup = args.iters or 1, args.warmup if args.warmup is not None else 1
    args.iters = args.iters or (20 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    if args.iters < 1 or args.warmup < 1:
        parser.error("--iters and --warmup must be >= 1 (the first step is never timed)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the selected methods, write ``methods_<device>.{json,md}``, print the table."""
    args = parse_args(argv)
    results: dict[str, Any] = {"environment": environment(args), "methods": []}
    stem = f"methods_{args.device}{'_quick' if args.quick else ''}"
    for name in args.methods.split(","):
        print(f"[methods] {name} ...", file=sys.stderr, flush=True)
        try:
            results["methods"].append(bench_method(name, args))
        except Exception as exc:  # one failing method must not lose the others' figures
            results["methods"].append({"method": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
            print(f"[methods] {name} failed: {exc!r}", file=sys.stderr, flush=True)
        # written after every method, so a run cut short by a time limit keeps its rows
        atomic_write_json(args.out / f"{stem}.json", results)
        atomic_write_text(args.out / f"{stem}.md", to_markdown(results))
    table = to_markdown(results)
    print(table, end="")
    return results


if __name__ == "__main__":
    main()
