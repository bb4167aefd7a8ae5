"""The API's SQLModel classes, one module per entity. Importing this registers every table."""

from api.models.audit import AuditEvent
from api.models.custom_node import CustomNode, CustomNodeUse, CustomNodeVersion
from api.models.dataset import Dataset
from api.models.pipeline import Pipeline, PipelineVersion
from api.models.run import Run
from api.models.schedule import Schedule
from api.models.share import Share
from api.models.sweep import Sweep
from api.models.team import Team, TeamGrant, TeamMember
from api.models.user import Role, User
from live.stream.tables import StreamDeployment, StreamDeploymentText
from live.tables import (
    InstanceChange,
    LiveBar,
    LiveEvent,
    LiveOrder,
    LivePosition,
    Strategy,
    StrategyInstance,
    StrategyVersion,
)

__all__ = [
    "AuditEvent",
    "CustomNode",
    "CustomNodeUse",
    "CustomNodeVersion",
    "Dataset",
    "InstanceChange",
    "LiveBar",
    "LiveEvent",
    "LiveOrder",
    "LivePosition",
    "Pipeline",
    "PipelineVersion",
    "Role",
    "Run",
    "Schedule",
    "Share",
    "Strategy",
    "StrategyInstance",
    "StrategyVersion",
    "StreamDeployment",
    "StreamDeploymentText",
    "Sweep",
    "Team",
    "TeamGrant",
    "TeamMember",
    "User",
]
