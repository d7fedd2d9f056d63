import torch

from fusedrnn import cli, demo


def test_info_lists_every_backend(capsys):
    cli.main(["info"])
    out = capsys.readouterr().out
    assert "torch" in out and "available" in out and "lstm" in out


def test_group_tables_are_groups():
    for task in ("parity", "s3"):
        table = demo.group_table(task)
        n = table.shape[0]
        assert (table[0] == torch.arange(n)).all() and (table[:, 0] == torch.arange(n)).all()  # identity
        for row in table:
            assert sorted(row.tolist()) == list(range(n))  # latin square


def test_running_product_labels():
    table = demo.group_table("parity")
    tokens, labels = demo.make_batch(table, 4, 9, torch.Generator().manual_seed(0))
    assert (labels == tokens.cumsum(1) % 2).all()


def test_demo_runs_and_reports(capsys):
    cli.main(["demo", "--steps", "3", "--train-len", "8", "--batch", "4", "--hidden", "8", "--heads", "2"])
    out = capsys.readouterr().out
    assert "fusedrnn LSTM" in out and "causal attention" in out and "accuracy at T=32" in out
