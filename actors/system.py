"""What other layers need of Thespian, through the one module that imports it: the actor system
itself, the system messages supervisors handle, and the controls of ptr's transport (the cookie,
refused frames, the frame codec).
Importing this binds and authenticates Thespian's transport (see ``actors._thespian``)."""

from actors._thespian import (
    ActorExitRequest,
    ActorSystem,
    ActorSystemException,
    ActorTypeDispatcher,
    ChildActorExited,
    cookie_hex,
    frame_codec,
    plain_transport,
    refused_frames,
    set_cookie,
)

__all__ = ["ActorExitRequest", "ActorSystem", "ActorSystemException", "ActorTypeDispatcher",
           "ChildActorExited", "cookie_hex", "frame_codec", "plain_transport", "refused_frames", "set_cookie"]
