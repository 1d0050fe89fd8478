"""Independent golden values for the BCL and logit-adjusted CE losses.

Written from SPEC.md section 2 alone, deliberately as plain loops over anchors and
contrast rows (the Rust code is vectorised), in float64 with PyTorch autograd.

    python tests/golden/make_golden.py tests/golden/bcl_loss.safetensors

(`make golden` runs it with the project venv.)
"""
import math
import sys

import torch
from safetensors.torch import save_file


def bcl_loss(z1, z2, prototypes, labels, num_classes, tau, class_averaging=True, class_complement=True):
    b = len(labels)
    anchors = [z1[i] for i in range(b)] + [z2[i] for i in range(b)]
    anchor_labels = [int(y) for y in labels] * 2
    contrast = list(anchors)
    contrast_labels = list(anchor_labels)
    if class_complement:
        contrast += [prototypes[k] for k in range(num_classes)]
        contrast_labels += list(range(num_classes))
    # n_hat_k: rows of class k in the contrast set
    n_hat = {k: contrast_labels.count(k) for k in range(num_classes)}

    total = 0.0
    for i, (a, y) in enumerate(zip(anchors, anchor_labels)):
        s = [torch.dot(a, c) / tau for c in contrast]
        row_max = max(float(v.detach()) for v in s)  # a constant: no gradient through it
        den = 0.0
        positives = []
        for j, (s_ij, y_j) in enumerate(zip(s, contrast_labels)):
            if j == i:
                continue
            is_positive = y_j == y
            if is_positive:
                positives.append(s_ij - row_max)
            w = (n_hat[y_j] - (1 if is_positive else 0)) if class_averaging else 1
            den = den + torch.exp(s_ij - row_max) / w
        log_den = torch.log(den)
        total = total - sum(p - log_den for p in positives) / len(positives)
    return total / len(anchors)


def la_ce(logits, labels, class_counts, tau=1.0):
    n = float(sum(int(c) for c in class_counts))
    total = 0.0
    for i, y in enumerate(labels):
        adjusted = [logits[i, k] + tau * math.log(int(class_counts[k]) / n) for k in range(logits.shape[1])]
        log_sum = torch.logsumexp(torch.stack(adjusted), 0)
        total = total - (adjusted[int(y)] - log_sum)
    return total / len(labels)


def unit_rows(g, rows, dim):
    x = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


CASES = [
    # (name, batch, classes, feature dim, temperature, labels or None for random)
    ("more classes than batch", 6, 10, 8, 0.07, [3, 3, 7, 1, 1, 9]),
    ("a class seen once", 8, 5, 6, 0.1, [0, 0, 0, 0, 1, 1, 1, 2]),
    ("all samples one class", 6, 4, 5, 0.2, [2] * 6),
    ("random", 16, 7, 12, 0.1, None),
    ("random, high temperature", 12, 3, 4, 0.5, None),
]


def main(out):
    g = torch.Generator().manual_seed(20220707)
    tensors = {}
    for k, (name, b, c, d, tau, labels) in enumerate(CASES):
        if labels is None:
            labels = torch.randint(0, c, (b,), generator=g).tolist()
        labels = torch.tensor(labels, dtype=torch.int64)
        z1 = unit_rows(g, b, d).requires_grad_()
        z2 = unit_rows(g, b, d).requires_grad_()
        protos = unit_rows(g, c, d).requires_grad_()
        loss = bcl_loss(z1, z2, protos, labels, c, tau)
        gz1, gz2, gp = torch.autograd.grad(loss, [z1, z2, protos])
        p = f"case{k}."
        tensors.update({
            p + "z1": z1.detach(), p + "z2": z2.detach(), p + "prototypes": protos.detach(),
            p + "labels": labels, p + "temperature": torch.tensor(tau, dtype=torch.float64),
            p + "loss": loss.detach(), p + "grad_z1": gz1, p + "grad_z2": gz2, p + "grad_prototypes": gp,
        })
        # The ablation variants (SupCon = both switches off), values only.
        with torch.no_grad():
            for key, avg, comp in [("loss_supcon", False, False), ("loss_no_class_averaging", False, True),
                                   ("loss_no_class_complement", True, False)]:
                tensors[p + key] = bcl_loss(z1, z2, protos, labels, c, tau, avg, comp).detach()

        logits = (3 * torch.randn(b, c, generator=g, dtype=torch.float64)).requires_grad_()
        counts = torch.tensor([max(1, int(500 * 0.1 ** (i / max(c - 1, 1)))) for i in range(c)], dtype=torch.int64)
        la = la_ce(logits, labels, counts)
        (g_logits,) = torch.autograd.grad(la, [logits])
        tensors.update({p + "logits": logits.detach(), p + "class_counts": counts,
                        p + "la_loss": la.detach(), p + "grad_logits": g_logits})
        print(f"case{k} ({name}): B={b} C={c} D={d} tau={tau} labels={labels.tolist()} "
              f"BCL={loss.item():.6f} LA-CE={la.item():.6f}")
    save_file({k: v.contiguous() for k, v in tensors.items()}, out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/bcl_loss.safetensors")
