"""Running ``cmrassist analyse`` as a user does (its own process) and reading what it wrote."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import SimpleITK as sitk

CMRASSIST = os.path.join(os.path.dirname(sys.executable), "cmrassist")


def analyse_command(studies, out, models, *extra):
    return [CMRASSIST, "analyse", "--studies", studies, "--out", out, "--model-dir", models, "--no-bar", *extra]


def analyse(studies, out, models, *extra):
    """Run the command to the end; its JSON lines (stdout)."""
    log = out + ".stdout"
    with open(log, "w") as f, open(out + ".stderr", "w") as err:
        code = subprocess.run(
            analyse_command(studies, out, models, *extra), stdout=f, stderr=err, env=os.environ, timeout=900
        ).returncode
    assert code == 0, open(out + ".stderr").read()[-4000:]
    return [json.loads(line) for line in open(log) if line.startswith("{")]


def table(out):
    return pq.read_table(os.path.join(out, "subjects.parquet")).to_pylist()


def label_array(out, relative):
    image = sitk.ReadImage(os.path.join(out, relative))
    return sitk.GetArrayFromImage(image), tuple(reversed(image.GetSpacing()))
