"""Drawing computational graphs without Graphviz: displaying warns and goes on, writing a file still raises."""
import pytest
import torch

from neuromancer.graphs import GraphvizMissingWarning
from neuromancer.system import Node, System


@pytest.fixture
def without_graphviz(tmp_path, monkeypatch):
    """A PATH on which Graphviz's ``dot`` cannot be found."""
    pytest.importorskip("pydot")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def small_system():
    return System([Node(torch.nn.Linear(2, 2), ["x"], ["x"], name="step")], name="loop", nsteps=2)


def test_displaying_a_graph_without_graphviz_warns_and_goes_on(without_graphviz):
    with pytest.warns(GraphvizMissingWarning, match="Graphviz's 'dot' program.*not displayed"):
        assert small_system().show() is None


def test_writing_a_graph_file_without_graphviz_still_raises(without_graphviz, tmp_path):
    with pytest.raises(FileNotFoundError, match="needs Graphviz's 'dot' program"):
        small_system().show(str(tmp_path / "graph.png"))
    assert not (tmp_path / "graph.png").exists()
