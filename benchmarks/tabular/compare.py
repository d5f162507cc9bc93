#!/usr/bin/python3
"""DistTrain against scikit-learn (StandardScaler + MLPClassifier with one 64-unit hidden layer) on tabular
sets bundled with scikit-learn whose columns differ widely in scale (wine, breast cancer), plus digits.
Every split seed draws a stratified 75/25 split, written as train/test CSVs; both sides train on the same
rows. DistTrain runs `train --model SPEC --dataset csv:train.csv:test=test.csv` with the default
standardization (auto: per feature) and with --standardize none, then `eval --json`.
Needs Debian's python3-sklearn (apt-get install python3-sklearn).
    benchmarks/tabular/compare.py [--seeds 5] [--epochs 200] [--dll PATH]"""
import argparse, json, os, statistics, subprocess, sys, tempfile
import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--seeds", type=int, default=5)
ap.add_argument("--epochs", type=int, default=200)
ap.add_argument("--dll", default=os.path.join(here, "../../src/DistTrain.Cli/bin/Release/net10.0/disttrain.dll"))
args = ap.parse_args()

def write_csv(path, x, y):
    with open(path, "w") as f:
        f.write(",".join(f"f{j}" for j in range(x.shape[1])) + ",label\n")
        for row, label in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{int(label)}\n")

def disttrain(spec, train, test, out, seed, standardize):
    subprocess.run(["dotnet", args.dll, "train", "--model", spec, "--dataset", f"csv:{train}:test={test}", "--epochs", str(args.epochs),
                    "--batch-size", "32", "--optimizer", "adam", "--lr", "0.001", "--seed", str(seed + 1), "--standardize", standardize,
                    "--out", out], check=True, capture_output=True)
    r = subprocess.run(["dotnet", args.dll, "eval", "--checkpoint", out, "--json"], check=True, capture_output=True, text=True)
    return json.loads(r.stdout)["accuracy"]

rows = []
with tempfile.TemporaryDirectory() as tmp:
    for name, load in [("wine", load_wine), ("breast_cancer", load_breast_cancer), ("digits", load_digits)]:
        d = load()
        x, y = d.data.astype(np.float32), d.target
        k = int(y.max()) + 1
        spread = x.std(axis=0).max() / max(x.std(axis=0)[x.std(axis=0) > 0].min(), 1e-12)
        spec = os.path.join(tmp, f"{name}.json")
        with open(os.path.join(here, "mlp64.json")) as f:
            s = json.load(f)
        s["input"] = [x.shape[1]]
        s["layers"][-1]["out"] = k
        with open(spec, "w") as f:
            json.dump(s, f)
        acc = {"sklearn": [], "disttrain": [], "disttrain_none": []}
        for seed in range(args.seeds):
            xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
            train, test = os.path.join(tmp, "train.csv"), os.path.join(tmp, "test.csv")
            write_csv(train, xtr, ytr); write_csv(test, xte, yte)
            clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=args.epochs, batch_size=32, random_state=seed))
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(xtr, ytr)
            acc["sklearn"].append(clf.score(xte, yte))
            acc["disttrain"].append(disttrain(spec, train, test, os.path.join(tmp, "run"), seed, "auto"))
            acc["disttrain_none"].append(disttrain(spec, train, test, os.path.join(tmp, "run"), seed, "none"))
        m = {key: 100 * statistics.mean(v) for key, v in acc.items()}
        rows.append((name, x.shape, k, spread, m))
        print(f"{name}: {x.shape[0]} rows x {x.shape[1]} features, {k} classes, column std ratio {spread:.0f}: "
              f"sklearn {m['sklearn']:.2f}%  disttrain {m['disttrain']:.2f}%  disttrain --standardize none {m['disttrain_none']:.2f}%", flush=True)
