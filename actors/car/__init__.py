"""The car telemetry system's actors and plain objects (System 2). Read ``tree`` first (the live
state: ownership, deadlines, plausibility, subscriptions), then ``holder`` (the process actor that
owns it and its UDP socket), then ``client`` (a subscriber of the pair) and ``simulator``.

Modules: ``vss`` (the VSS catalogue loader and the sensor deployment), ``tree``, ``holder``,
``history`` (the history table for the ``Batcher``), ``client``, ``simulator``.
"""

from actors.car.client import CarClient
from actors.car.history import HISTORY_TABLE
from actors.car.holder import SignalHolder, SignalHolderArgs, build_tree_of
from actors.car.simulator import CarModel, SensorFleet, SimulatedCar
from actors.car.tree import SignalTree, Subscriptions, UnknownSignalError
from actors.car.vss import SensorSpec, SignalSpec, VssError, default_sensors, load_vspec

__all__ = ["HISTORY_TABLE", "CarClient", "CarModel", "SensorFleet", "SensorSpec", "SignalHolder",
           "SignalHolderArgs", "SignalSpec", "SignalTree", "SimulatedCar", "Subscriptions", "UnknownSignalError",
           "VssError", "build_tree_of", "default_sensors", "load_vspec"]
