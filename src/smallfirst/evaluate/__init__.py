"""Find the smallest model that meets the bar on the user's own task.

Run candidates (models, routers, cascades, students) on a labelled set, score them with the
task's metrics and bootstrap intervals, recommend the cheapest one whose lower bound meets the
threshold, and report it as a table, JSON and a self-contained HTML page.
"""

from smallfirst.evaluate.candidate import Candidate, Prediction
from smallfirst.evaluate.data import Example, load_examples
from smallfirst.evaluate.evaluation import EvalReport, EvalSettings, evaluate
from smallfirst.evaluate.projection import Projection, Workload, project
from smallfirst.evaluate.recommend import Recommendation, recommend

__all__ = [
    "Candidate",
    "EvalReport",
    "EvalSettings",
    "Example",
    "Prediction",
    "Projection",
    "Recommendation",
    "Workload",
    "evaluate",
    "load_examples",
    "project",
    "recommend",
]
