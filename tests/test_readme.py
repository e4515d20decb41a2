"""The README's estimator example runs and trains (it is the library's front page)."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_estimator_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "variance_loss" in b)
    torch.manual_seed(0)
    namespace: dict = {}
    code = example.replace("range(100)", "range(3)")
    for keep in ("var_loss.backward(inputs=list(cv.parameters()))", "logits.backward(g.detach())"):
        assert keep in code
        code = code.replace(keep, keep[:-1] + ", retain_graph=True)")  # to recompute below
    step_line = "opt.step(); cv_opt.step()"
    assert step_line in code  # the last iteration does not step, so its graph stays valid
    code = code.replace(step_line, "(opt.step(), cv_opt.step()) if step < 2 else None")
    exec(compile(code, "README", "exec"), namespace)  # noqa: S102 - our own README
    assert torch.isfinite(namespace["est"].surrogate)
    # the README's one-pass gradients equal a second first-order pass on the last estimate
    est = namespace["est"]
    encoder, decoder = namespace["encoder"], namespace["decoder"]
    params = [*encoder.parameters(), *decoder.parameters()]
    expected = torch.autograd.grad(est.surrogate, params)
    for p, g in zip(params, expected):
        torch.testing.assert_close(p.grad, g)


def test_readme_entropy_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "entropy_surrogate" in b)
    torch.manual_seed(0)
    namespace: dict = {}
    code = example.replace("range(200)", "range(3)")
    exec(compile(code, "README", "exec"), namespace)  # noqa: S102 - our own README
    assert torch.isfinite(namespace["loss"])


def test_readme_svgd_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "entropy_estimate" in b)
    torch.manual_seed(0)
    namespace: dict = {"print": lambda *a: None}
    code = example.replace("n_steps=200", "n_steps=5").replace("(8, 200)", "(2, 20)")
    exec(compile(code, "README", "exec"), namespace)  # noqa: S102 - our own README
    assert torch.isfinite(namespace["out"].log_prob).all()


def test_readme_has_exactly_two_setup_commands():
    setup = README.read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", setup, flags=re.DOTALL)[0].strip().splitlines()
    assert len(commands) == 2
    assert "reproduce --preset quick" in commands[0] and "pytest" in commands[1]


def test_readme_vae_examples_train_save_load_and_evaluate(tmp_path, monkeypatch):
    """The two stochgrad.vae examples: train a few steps, save, load (the same parameters),
    sample, log p(x) finite; the binary VAE's bound finite."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    continuous = next(b for b in blocks if "make_continuous_vae" in b)
    discrete = next(b for b in blocks if "DiscreteEstimator" in b)
    monkeypatch.chdir(tmp_path)  # the example writes vae.pt
    torch.manual_seed(0)
    printed: list = []
    namespace: dict = {"print": printed.append}
    assert "range(200)" in continuous and "n_samples=500" in continuous  # the shrinking applies
    code = continuous.replace("range(200)", "range(3)").replace("n_samples=500", "n_samples=20")
    exec(compile(code, "README", "exec"), namespace)  # noqa: S102 - our own README
    for a, b in zip(
        namespace["model"].state_dict().values(), namespace["loaded"].state_dict().values()
    ):
        assert torch.equal(a, b)
    assert namespace["images"].shape == (16, 784) and torch.isfinite(printed[-1])
    assert "range(200)" in discrete and "n_samples=100" in discrete
    code = discrete.replace("range(200)", "range(3)").replace("n_samples=100", "n_samples=5")
    exec(compile(code, "README", "exec"), namespace)  # noqa: S102 - our own README
    assert torch.isfinite(printed[-1]) and printed[-1] < 0


def test_readme_rl_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "from stochgrad.rl import SAC, make_agent" in b)
    monkeypatch.chdir(tmp_path)  # the example writes sac.pt
    assert "agent.learn(8000" in example and "checkpoint_every=2000" in example
    code = (
        example.replace("agent.learn(8000", "agent.learn(450")
        .replace("checkpoint_every=2000", "checkpoint_every=100")
        .replace("s2ac.learn(8000)", "s2ac.learn(1050)")
    )
    printed: list = []
    exec(compile(code, "README", "exec"), {"print": printed.append})  # noqa: S102
    assert len(printed) == 2 and printed[0] < 0 and printed[1] < 0
    assert (tmp_path / "sac.pt").exists()
