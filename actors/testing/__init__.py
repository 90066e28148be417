"""Actors for tests and benchmarks (as ``trio.testing``): read ``scripted`` (the faulty actor that
drives fault tests: crash, exit, hang, fail on restart), then ``bench`` (the benchmarks' actors)."""

from actors.testing.scripted import LightScriptedActor, Recorder, ScriptedActor

__all__ = ["LightScriptedActor", "Recorder", "ScriptedActor"]
