"""Training with teacher forcing: data -> tokenizer -> batches -> model -> checkpoints.

One process, or many with ``torchrun`` (DistributedDataParallel: gloo on CPU, NCCL on
GPU). Everything needed to continue a killed run is in its output directory::

    OUT/run.json               full config + data arguments (the recipe)
    OUT/tokenizer.model        trained once, reused on resume
    OUT/checkpoints/step-N/    model, optimizer (+ RNG) as safetensors, state.json
    OUT/model/                 the best model so far (inference-ready model directory)
    OUT/metrics.jsonl, OUT/curves.png

Checkpoints are written to a temporary directory and renamed into place, so a crash
never leaves a half-written one; ``--resume`` restores model, optimizer, schedule,
data position and RNG, and continues as if never stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import sys
import time
import tomllib
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .atomic import append_record, read_records, trim_records
from .checkpoints import (CheckpointStore, average_checkpoints, crash_point, replace_dir, write_json_atomic,
                          writing)
from .config import ModelConfig, dataclass_from_dict
from .errors import ConfigError, CrossattnError
from .data import (CorpusStats, DataError, TokenBatcher, collate, encode_corpus, load_corpus, looks_clean,
                   parse_corpus_arg, parse_weighted_corpus_arg, percent_sign, weighted)
from .guided import PieceLinks, guided_loss, piece_links, read_linked_pairs
from .modeldir import WEIGHTS, ModelDirError, load_tokenizer, read_model_dir, resolve_model_dir, tokenizer_files
from .model import Seq2SeqTransformer, load_weights
from .tokenizer import Tokenizer
from .precision import pick_device, training_dtype
from .modeldir import save_model_dir
from .torch_engine import TorchTranslator


@dataclass
class TrainConfig:
    vocab_size: int = 8000
    tokenizer_type: str = "unigram"  # unigram | bpe
    max_len: int = 128  # tokens per side, longer pairs are dropped
    max_ratio: float = 3.0  # character length ratio filter
    clean_filter: bool = False  # drop placeholders, markup, UI labels (data.looks_clean)
    percent_sign: bool = False  # training text: "9 p. 100" -> "9 %" (data.percent_sign)
    max_tokens: int = 4096  # tokens per batch per process (padded)
    accum_steps: int = 1
    lr: float = 7e-4
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.0  # floor of the inverse-sqrt decay, relative to lr
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    max_steps: int = 100_000
    max_minutes: float = 0.0  # 0 = no limit
    eval_every: int = 1000
    eval_sentences: int = 500  # dev sentences translated for BLEU
    eval_beam: int = 1
    patience: int = 10  # evaluations without BLEU gain before stopping; 0 = never
    keep_last: int = 3
    average_last: int = 0  # at the end, also try the average of the last N checkpoints
    # guided alignment (guided.py, Garg et al. 2019) on the pairs of --guided files: the loss
    # weight (fairseq's transformer_align uses 0.05; 0 = off) and the decoder layer whose
    # head 0 learns the links (negative: from the last; Garg et al. take the penultimate)
    guided_alignment: float = 0.0
    guided_layer: int = -2
    log_every: int = 50
    seed: int = 1
    dtype: str = "auto"  # auto | bf16 | fp32 (autocast; master weights stay fp32)
    device: str = "auto"
    compile: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return dataclass_from_dict(cls, d, "train")


PRESETS: dict[str, dict] = {
    # seconds on a laptop: tests and demos
    "tiny": {
        "model": dict(d_model=64, n_heads=4, d_ff=128, encoder_layers=2, decoder_layers=2, dropout=0.0, max_positions=64),
        "train": dict(vocab_size=300, max_len=60, max_tokens=2048, lr=3e-3, warmup_steps=50, eval_every=100,
                      eval_sentences=100, log_every=10, keep_last=2, patience=0),
    },
    # a real small translator (~10M parameters)
    "small": {
        "model": dict(d_model=256, n_heads=4, d_ff=1024, encoder_layers=4, decoder_layers=3, dropout=0.1),
        "train": dict(vocab_size=8000, max_tokens=4096, lr=1e-3, warmup_steps=1000, eval_every=1000),
    },
    # the shipped en-fr size (~22M parameters)
    "base": {
        "model": dict(d_model=384, n_heads=6, d_ff=1536, encoder_layers=6, decoder_layers=3, dropout=0.2),
        "train": dict(vocab_size=10000, max_tokens=8192, lr=1e-3, warmup_steps=2000, eval_every=1000),
    },
}


def load_config(config_file: str | None, preset: str | None) -> tuple[ModelConfig, TrainConfig]:
    """Preset values (``--preset`` or ``preset = "..."`` in the file), overridden by the
    TOML file's [model] and [train] tables."""
    data: dict = {}
    if config_file:
        try:
            with open(config_file, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{config_file}: invalid TOML ({e})") from None
        unknown = sorted(set(data) - {"model", "train", "preset"})
        if unknown:
            raise ConfigError(f"{config_file}: unknown keys {unknown}; expected preset, [model] and [train]")
    preset = preset or data.get("preset")
    if preset and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    base = PRESETS[preset] if preset else {}
    merged = {k: {**base.get(k, {}), **data.get(k, {})} for k in ("model", "train")}
    return ModelConfig.from_dict(merged["model"]), TrainConfig.from_dict(merged["train"])


# -- the same run, or not -------------------------------------------------------------
def run_fingerprint(model_cfg: ModelConfig, cfg: TrainConfig, data_args: dict) -> str:
    """What makes a run this run: network, training settings and data arguments
    (stop limits excluded, so a resumed run may be given more steps or minutes). A
    setting at its default is left out: an option added in a later version (its default
    being the old behaviour) leaves the fingerprints of runs that don't use it as they were."""
    def chosen(config, ignored: tuple[str, ...]) -> dict:
        defaults = asdict(type(config)())
        return {k: v for k, v in asdict(config).items() if k not in ignored and v != defaults[k]}

    train = chosen(cfg, ("max_steps", "max_minutes", "device", "eval_every", "log_every", "patience"))
    model = chosen(model_cfg, ("vocab_size",))  # set by the tokenizer later
    blob = json.dumps({"model": model, "train": train, "data": data_args}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_same_run(out: Path, fingerprint: str, allow_changed: bool) -> None:
    """--resume continues the run recorded in OUT/run.json, not a different one."""
    run_json = out / "run.json"
    if not run_json.exists():
        return
    saved = json.loads(run_json.read_text()).get("fingerprint")
    if saved is not None and saved != fingerprint and not allow_changed:
        raise TrainInputsChanged(
            f"{out} holds a run with other data or settings (fingerprint {saved}, now {fingerprint}); "
            "use the same --train/--valid/--init-from and config, a new --out, or --allow-changed-inputs")


class TrainInputsChanged(CrossattnError, ValueError):
    """--resume was given other inputs than the run it would continue."""


# -- the trainer -----------------------------------------------------------------------
class Trainer:
    def __init__(self, args, model_cfg: ModelConfig, cfg: TrainConfig):
        self.args, self.cfg = args, cfg
        self.out = Path(args.out)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = pick_device(cfg.device)
        if self.world > 1:
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.main = self.rank == 0
        torch.manual_seed(cfg.seed)
        self.log(f"device {self.device}, {self.world} process(es)")

        self.out.mkdir(parents=True, exist_ok=True)
        self.init_from = resolve_model_dir(args.init_from) if getattr(args, "init_from", None) else None
        # the tokenizer kind of the weights (config.json's "tokenizer"): fine-tuning keeps it
        self.tokenizer_config: dict = {}
        if self.init_from is not None:  # the network of the weights; dropout from this run's config
            _, init_config, init_model_cfg, _ = read_model_dir(self.init_from)
            self.tokenizer_config = {k: init_config[k] for k in ("tokenizer",) if k in init_config}
            model_cfg = replace(init_model_cfg, dropout=model_cfg.dropout,
                                attention_dropout=model_cfg.attention_dropout)
        # the languages of the files' two columns, and which way this model translates
        self.reverse = bool(getattr(args, "reverse", False))
        column_langs = (getattr(args, "languages", None) or "en-fr").split("-", 1)
        src_lang, tgt_lang = column_langs[::-1] if self.reverse else column_langs
        self.languages = {"source": src_lang, "target": tgt_lang}
        self.data_args = {"train": list(args.train), "valid": args.valid,
                          **({"guided": list(args.guided)} if getattr(args, "guided", None) else {}),
                          "init_from": str(self.init_from.resolve()) if self.init_from else None,
                          **({"reverse": True} if self.reverse else {}),
                          **({"languages": args.languages} if getattr(args, "languages", "en-fr") != "en-fr" else {})}
        self.fingerprint = run_fingerprint(model_cfg, cfg, self.data_args)
        if args.resume:
            check_same_run(self.out, self.fingerprint, getattr(args, "allow_changed_inputs", False))
        self._prepare_data(model_cfg)
        self.amp_dtype = training_dtype(cfg.dtype, self.device, self.model_cfg.d_model)
        why = f"--dtype {cfg.dtype}" if cfg.dtype != "auto" else "precision.py: the measured rule for this device and d_model"
        self.log(f"autocast {self.amp_dtype} ({why})")
        self.model = Seq2SeqTransformer(self.model_cfg)
        if self.init_from is not None:
            try:
                load_weights(self.model, self.init_from / WEIGHTS)
            except ValueError as e:
                raise ModelDirError(f"{self.init_from / WEIGHTS}: {e}") from None
            self.log(f"initialised from {self.init_from}")
        self.model.to(self.device)
        self.log(f"model: {self.model.num_parameters() / 1e6:.2f}M parameters")
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9,
        )
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_bleu, self.evals_without_gain = -1.0, 0
        self.checkpoints = CheckpointStore(self.out / "checkpoints", cfg.keep_last)
        if args.resume and self.checkpoints.latest():
            self._load_checkpoint(self.checkpoints.latest())
        if self.main:  # the log goes on from the step trained to (a resumed run logs its lost tail again)
            trim_records(self.out / "metrics.jsonl", lambda rec: rec.get("step", 0) <= self.step)
        self._write_run_json()
        self.ddp = self.model
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model)
        self.forward = torch.compile(self.ddp) if cfg.compile else self.ddp

    def log(self, msg: str) -> None:
        if self.main:
            print(msg, file=sys.stderr, flush=True)

    # -- data -----------------------------------------------------------------------
    def _prepare_data(self, model_cfg: ModelConfig) -> None:
        cfg = self.cfg
        keep = looks_clean if cfg.clean_filter else None
        pairs, stats = [], CorpusStats()
        for arg in self.args.train:
            path, weight = parse_weighted_corpus_arg(arg)
            corpus, st = load_corpus([path], max_ratio=cfg.max_ratio, keep=keep)
            if cfg.percent_sign:
                corpus = [(percent_sign(s), percent_sign(t)) for s, t in corpus]
            if self.reverse:
                corpus = [(t, s) for s, t in corpus]
            self.log(f"train {arg}: {st.summary()}" + (f", weight {weight:g}" if weight != 1 else ""))
            stats.merge(st)
            pairs.extend(weighted(corpus, weight, seed=cfg.seed))
        guided_rows = []
        for arg in getattr(self.args, "guided", None) or []:
            rows = read_linked_pairs(arg)
            if self.reverse:
                rows = [(t, s, [(j, i) for i, j in links]) for s, t, links in rows]
            self.log(f"guided {arg}: {len(rows):,} pairs with word links")
            guided_rows.extend(rows)
        if guided_rows and not cfg.guided_alignment:
            self.log("(--guided pairs are trained for translation only: [train] guided_alignment is 0)")
        self.log(f"train: {stats.summary()}; {len(pairs):,} pairs per epoch after weights")
        if not pairs and not guided_rows:
            raise DataError("no usable training pairs")
        valid, vstats = load_corpus([parse_corpus_arg(self.args.valid)], max_ratio=None, dedup=False)
        if self.reverse:
            valid = [(t, s) for s, t in valid]
        self.log(f"valid: {vstats.summary()}")
        if not valid:
            raise DataError("no usable validation pairs")
        # OUT/tokenizer.model, or an imported Marian model's source.spm, target.spm, vocab.json
        tok_names = tokenizer_files(self.tokenizer_config)
        if self.main:
            for name in tok_names:
                tok_path = self.out / name
                if tok_path.exists():
                    continue
                tmp = tok_path.with_name(tok_path.name + ".tmp")
                if self.init_from is not None:  # fine-tuning keeps the vocabulary of its weights
                    shutil.copyfile(self.init_from / name, tmp)
                else:
                    texts = [s for s, _ in pairs] + [t for _, t in pairs]
                    texts += [s for s, _, _ in guided_rows] + [t for _, t, _ in guided_rows]
                    Tokenizer.train(texts, tmp, cfg.vocab_size, cfg.tokenizer_type, log=self.log)
                os.replace(tmp, tok_path)
        if self.world > 1:
            dist.barrier()
        self.tokenizer = load_tokenizer(self.out, self.tokenizer_config)
        # translations are cut by the target side (a Marian model's target.spm; else the same model)
        target_tokenizer = self.tokenizer.target_side()
        self.model_cfg = ModelConfig.from_dict({**model_cfg.to_dict(), "vocab_size": self.tokenizer.vocab_size})
        max_len = min(cfg.max_len, self.model_cfg.max_positions)
        self.src, self.tgt, dropped = encode_corpus(pairs, self.tokenizer, max_len, target_tokenizer)
        self.links: dict[int, PieceLinks] = {}  # training example -> its piece links (guided pairs)
        unusable = 0
        for s, t, links in guided_rows:
            sp, tp = self.tokenizer.encode_with_spans(s), target_tokenizer.encode_with_spans(t)
            piece = piece_links(sp, tp, s, t, links)
            if piece is None or len(sp) >= max_len or len(tp) >= max_len:
                unusable += 1
                continue
            self.links[len(self.src)] = piece
            self.src.append([pid for pid, _, _ in sp])
            self.tgt.append([pid for pid, _, _ in tp])
        if guided_rows:
            self.log(f"guided: {len(self.links):,} pairs ({unusable:,} too long or with links outside the text)")
        self.guided_layer = cfg.guided_layer % self.model_cfg.decoder_layers
        self.log(f"{len(self.src)} training pairs ({dropped} longer than {max_len} tokens dropped), "
                 f"{sum(map(len, self.tgt)) + len(self.tgt)} target tokens per epoch")
        self.valid_pairs = valid
        self.vsrc, self.vtgt, _ = encode_corpus(valid, self.tokenizer, max_len, target_tokenizer)
        self.batcher = TokenBatcher([len(s) + 1 for s in self.src], [len(t) + 1 for t in self.tgt], cfg.max_tokens,
                                    seed=cfg.seed, rank=self.rank, world_size=self.world)

    def _write_run_json(self) -> None:
        if self.main:
            write_json_atomic(self.out / "run.json", {
                "model": self.model_cfg.to_dict(), "train": asdict(self.cfg), "data": self.data_args,
                "fingerprint": self.fingerprint, "command": " ".join(sys.argv),
            })

    # -- schedule -------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Linear warmup, then inverse square root decay (Vaswani et al.)."""
        cfg, s = self.cfg, max(step, 1)
        factor = min(s / cfg.warmup_steps, math.sqrt(cfg.warmup_steps / s)) if cfg.warmup_steps else 1 / math.sqrt(s)
        return cfg.lr * max(factor, cfg.min_lr_ratio if s > cfg.warmup_steps else 0.0)

    def autocast(self):
        enabled = self.amp_dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=enabled)

    def loss_on(self, idx: list[int], src_ids, tgt_ids, links: dict[int, PieceLinks] | None = None
                ) -> tuple[torch.Tensor, int, float, int]:
        """Summed loss of the batch (translation + guided alignment), its target tokens, and
        the guided part alone with the target pieces it covered (for the log)."""
        src, tgt_in, tgt_out = (t.to(self.device, non_blocking=True) for t in
                                collate([src_ids[i] for i in idx], [tgt_ids[i] for i in idx],
                                        self.model_cfg.pad_id, self.model_cfg.bos_id, self.model_cfg.eos_id))
        batch_links = [links.get(i) for i in idx] if links and self.cfg.guided_alignment else []
        guided = any(batch_links)
        with self.autocast():
            out = self.forward(src, tgt_in, need_weights=(self.guided_layer,) if guided else False)
        logits, targets, ignore = out.logits, tgt_out, self.model_cfg.pad_id
        pad = self.model_cfg.pad_id
        if self.model_cfg.bos_id == pad:
            # A decoder that starts from <pad> (an imported Marian model) reads <pad>'s
            # embedding, all zeros, as its start; the output shares that row (tied). <pad> is
            # never written, so it leaves the softmax: its row then gets no gradient and
            # stays zero, as training read it and as CTranslate2's export needs it.
            logits = logits[..., torch.arange(logits.size(-1), device=logits.device) != pad]
            targets = torch.where(tgt_out.eq(pad), -100, tgt_out - tgt_out.gt(pad).long())
            ignore = -100
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1),
                               ignore_index=ignore, label_smoothing=self.cfg.label_smoothing, reduction="sum")
        guided_sum, covered = 0.0, 0
        if guided:
            head = out.cross_attention[self.guided_layer][:, 0]  # (batch, tgt_len, src_len), fp32
            g, covered = guided_loss(head, batch_links)
            loss = loss + self.cfg.guided_alignment * g
            guided_sum = g.item()
        return loss, int(tgt_out.ne(self.model_cfg.pad_id).sum()), guided_sum, covered

    # -- the loop -------------------------------------------------------------------
    def train(self) -> Path:
        stop_requested: list[int] = []
        previous = signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(1))
        try:
            return self._train_loop(stop_requested)
        finally:  # in-process callers (tests, notebooks) keep their own SIGTERM behaviour
            signal.signal(signal.SIGTERM, previous)

    def _train_loop(self, stop_requested: list[int]) -> Path:
        cfg = self.cfg
        deadline = time.time() + cfg.max_minutes * 60 if cfg.max_minutes else None
        batches = self.batcher.iterate(self.epoch, self.batch_in_epoch)
        progress = None
        if self.main:
            from tqdm import tqdm
            progress = tqdm(total=cfg.max_steps, initial=self.step, dynamic_ncols=True, file=sys.stderr,
                            disable=not sys.stderr.isatty() and not os.environ.get("CROSSATTN_PROGRESS"))
        window_loss, window_tokens, window_start = 0.0, 0, time.time()
        window_guided, window_covered = 0.0, 0
        self.model.train()
        stop_reason = "max_steps"
        while self.step < cfg.max_steps:
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.step + 1)
            tokens_total, loss_total = 0, 0.0
            for micro in range(cfg.accum_steps):
                epoch, b, idx = next(batches)
                sync = micro == cfg.accum_steps - 1 or self.world == 1
                ctx = self.ddp.no_sync() if (self.world > 1 and not sync) else nullcontext()
                with ctx:
                    loss, ntok, guided_sum, covered = self.loss_on(idx, self.src, self.tgt, self.links)
                    (loss / max(ntok, 1) / cfg.accum_steps).backward()
                tokens_total += ntok
                loss_total += loss.item() - self.cfg.guided_alignment * guided_sum  # translation alone
                window_guided, window_covered = window_guided + guided_sum, window_covered + covered
            self.epoch, self.batch_in_epoch = epoch, b + 1
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.step += 1
            crash_point("step", self.step)
            window_loss += loss_total
            window_tokens += tokens_total

            out_of_time = deadline is not None and time.time() > deadline
            if self.world > 1:  # every rank must agree to stop at the same step
                flag = torch.tensor([float(bool(stop_requested) or out_of_time)], device=self.device)
                dist.all_reduce(flag)
                stop_now = bool(flag.item())
            else:
                stop_now = bool(stop_requested) or out_of_time
            if self.step % cfg.log_every == 0 or stop_now or self.step == cfg.max_steps:  # the last window too
                elapsed = time.time() - window_start
                rec = {"step": self.step, "epoch": self.epoch, "train_loss": window_loss / max(window_tokens, 1),
                       "tokens_per_s": window_tokens * self.world / elapsed, "lr": self.lr_at(self.step)}
                if window_covered:  # per target piece with links: cross-entropy of the guided head
                    rec["guided_loss"] = window_guided / window_covered
                self._record(rec)
                if progress:
                    progress.set_postfix(loss=f"{rec['train_loss']:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}",
                                         lr=f"{rec['lr']:.2e}")
                window_loss, window_tokens, window_start = 0.0, 0, time.time()
                window_guided, window_covered = 0.0, 0
            if progress:
                progress.update(1)

            if self.step % cfg.eval_every == 0 or stop_now or self.step == cfg.max_steps:
                improved = self.evaluate_and_save()
                if cfg.patience and not improved:
                    self.evals_without_gain += 1
                    if self.evals_without_gain >= cfg.patience:
                        stop_reason = f"no BLEU gain in {cfg.patience} evaluations"
                        break
                elif improved:
                    self.evals_without_gain = 0
            if stop_now:
                stop_reason = "signal" if stop_requested else "time limit"
                break
        if progress:
            progress.close()
        self.log(f"stopped at step {self.step}: {stop_reason}; best dev BLEU {self.best_bleu:.2f}")
        if self.main and cfg.average_last > 1:
            self._try_average()
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()
        return self.out / "model"

    def _record(self, rec: dict) -> None:
        if not self.main:
            return
        append_record(self.out / "metrics.jsonl", rec)

    # -- evaluation -------------------------------------------------------------------
    @torch.no_grad()
    def validation_loss(self) -> float:
        self.model.eval()
        total, count = 0.0, 0
        vb = TokenBatcher([len(s) + 1 for s in self.vsrc], [len(t) + 1 for t in self.vtgt], self.cfg.max_tokens,
                          shuffle=False)
        saved_forward, self.forward = self.forward, self.model
        for idx in vb.epoch_batches(0):
            loss, n, _, _ = self.loss_on(idx, self.vsrc, self.vtgt)
            total, count = total + loss.item(), count + n
        self.forward = saved_forward
        self.model.train()
        return total / max(count, 1)

    def dev_bleu(self, model: Seq2SeqTransformer) -> float:
        import copy

        import sacrebleu

        sample = self.valid_pairs[: self.cfg.eval_sentences]
        infer = copy.deepcopy(model)
        translator = TorchTranslator(infer, self.tokenizer, {"beam": self.cfg.eval_beam}, device=str(self.device),
                                dtype="auto" if self.device.type == "cuda" else "fp32")
        hyps = translator.translate([s for s, _ in sample])
        return sacrebleu.corpus_bleu(hyps, [[t for _, t in sample]]).score

    def evaluate_and_save(self) -> bool:
        improved = False
        if self.main:
            vloss = self.validation_loss()
            bleu = self.dev_bleu(self.model)
            improved = bleu > self.best_bleu
            if improved:
                self.best_bleu = bleu
                self._save_model_dir(self.model, "model", bleu)
            self._record({"step": self.step, "valid_loss": vloss, "valid_bleu": bleu, "best_bleu": self.best_bleu})
            self.log(f"step {self.step}: valid loss {vloss:.3f}, dev BLEU {bleu:.2f} (best {self.best_bleu:.2f})")
            self._save_checkpoint()
            self._plot()
        if self.world > 1:
            flag = torch.tensor([float(improved)], device=self.device)
            dist.broadcast(flag, 0)
            improved = bool(flag.item())
            dist.barrier()
        return improved

    def _save_model_dir(self, model: Seq2SeqTransformer, name: str, bleu: float) -> None:
        tmp = self.out / f"{name}.tmp"
        with writing(tmp, f"model directory {self.out / name}"):
            if tmp.exists():
                shutil.rmtree(tmp)
            training = {"step": self.step, "dev_bleu": bleu}
            if self.cfg.guided_alignment and self.links:  # where the links were taught: align --layer L --head 0
                training["guided_layer"] = self.guided_layer
            save_model_dir(model, self.tokenizer, tmp, extra={"languages": self.languages, "training": training})
            replace_dir(tmp, self.out / name)

    # -- checkpoints ------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        self.checkpoints.save(self.step, self.model, self.opt, self.device, {
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "best_bleu": self.best_bleu, "evals_without_gain": self.evals_without_gain})

    def _load_checkpoint(self, path: Path) -> None:
        state = self.checkpoints.load(path, self.model, self.opt, self.device)
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best_bleu, self.evals_without_gain = state["best_bleu"], state["evals_without_gain"]
        self.log(f"resumed from {path} (step {self.step}, epoch {self.epoch}, batch {self.batch_in_epoch})")

    def _try_average(self) -> None:
        """Average the last N checkpoints; keep the result if it beats the best on dev."""
        ckpts = self.checkpoints.all()[-self.cfg.average_last:]
        if len(ckpts) < 2:
            return
        avg = average_checkpoints(ckpts, self.model_cfg).to(self.device)
        bleu = self.dev_bleu(avg)
        self.log(f"average of {len(ckpts)} checkpoints: dev BLEU {bleu:.2f} (best single {self.best_bleu:.2f})")
        self._record({"step": self.step, "averaged": len(ckpts), "valid_bleu": bleu})
        if bleu > self.best_bleu:
            self.best_bleu = bleu
            self._save_model_dir(avg, "model", bleu)

    def _plot(self) -> None:
        try:
            plot_curves(self.out / "metrics.jsonl", self.out / "curves.png")
        except Exception as e:  # a plot must never stop training
            self.log(f"(could not draw curves: {e})")


def plot_curves(metrics: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_records(metrics)
    train = [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r]
    valid = [(r["step"], r["valid_loss"], r["valid_bleu"]) for r in rows if "valid_loss" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        ax1.plot(*zip(*train), label="train (label-smoothed)", lw=1)
    if valid:
        steps, vloss, bleu = zip(*valid)
        ax1.plot(steps, vloss, "o-", label="valid", ms=3)
        ax2.plot(steps, bleu, "o-", color="C2", ms=3)
    ax1.set(xlabel="step", ylabel="loss per target token", title="loss")
    ax1.legend()
    ax2.set(xlabel="step", ylabel="BLEU", title="dev BLEU (sample)")
    fig.tight_layout()
    tmp = png.with_name(png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png)


def run(args) -> Path:
    """Entry point used by the CLI (``crossattn train``)."""
    out = Path(args.out)
    if args.resume and (out / "run.json").exists() and not (args.config or args.preset):
        saved = json.loads((out / "run.json").read_text())
        model_cfg = ModelConfig.from_dict(saved["model"])
        cfg = TrainConfig.from_dict(saved["train"])
    else:
        model_cfg, cfg = load_config(args.config, args.preset or (None if args.config else "tiny"))
    overrides = {k: getattr(args, k) for k in ("max_steps", "max_minutes", "seed", "device", "dtype", "max_tokens",
                                               "eval_every", "eval_sentences", "lr", "warmup_steps") if getattr(args, k, None) is not None}
    cfg = TrainConfig.from_dict({**asdict(cfg), **overrides})
    torch.set_num_threads(int(os.environ.get("CROSSATTN_THREADS", torch.get_num_threads())))
    return Trainer(args, model_cfg, cfg).train()
