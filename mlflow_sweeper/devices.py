"""Devices for local trials: which ones an agent may use, and a host-wide pool that gives each
running trial its own.

The pool is one lock per device, host-wide: every agent of every user on the host shares it
(not `output_dir`: two sweeps in different directories still share the GPUs), whatever variable
carries the devices. On Linux a lock is a bound abstract Unix socket (no file, no permissions to
share, gone with its last holder); elsewhere an OS file lock in `SHARED_LOCK_DIR`. Either
is released when the processes holding it die, so an agent killed mid-trial never leaves a device
taken.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import EXIT_USAGE, ConfigProblem, SweeperError

AUTO = "auto"
# Variables every trial gets from the sweeper or MLflow: `device_env` may not overwrite them.
RESERVED_ENV_PREFIXES = ("MLFLOW_", "SWEEPER_")
RESERVED_ENV = ("PATH", "HOME", "PYTHONPATH")
LOCK_DIR_ENV = "SWEEPER_DEVICE_LOCK_DIR"  # the per-device locks' namespace (tests, odd hosts)
POLL_SECONDS = 0.2  # how often a trial waiting for devices looks again
NEEDED_EVERY = 10  # polls between two looks at whether the sweep still needs them (a read)
DEVICES_TAG = "sweeper.devices"


class DeviceError(ValueError):
    """A `devices` value that cannot be read."""


class UnusableDevices(SweeperError):
    """Devices this host cannot hand out as the config asks (`auto` found fewer GPUs than one
    trial needs; two ids name one GPU): exit 2, before anything is written."""

    exit_code = EXIT_USAGE


# What a device variable names a device by: its index, or its UUID (a GPU's, a MIG instance's).
_DEVICE_ID = re.compile(r"\d+|(?:GPU|MIG)-[0-9A-Za-z][0-9A-Za-z/-]*")


def parse_devices(value: object) -> str | tuple[str, ...]:
    """`auto`, a list of ids, or a comma-separated string of ids, as loaded from a config.

    Ids stay text (`0`, `1`, or a UUID such as `GPU-5f...`), since the device variable is text."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, bool):
        raise DeviceError(f"expected 'auto', a list of device ids or \"0,1\", got {value!r}")
    if isinstance(value, int):
        items: Sequence[object] = [value]
    elif isinstance(value, str):
        items = [part for part in value.split(",")]
    elif isinstance(value, list):
        items = value
    else:
        raise DeviceError(f"expected 'auto', a list of device ids or \"0,1\", got {value!r}")
    ids: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str) or not str(item).strip():
            raise DeviceError(f"a device id must be a number or a name, got {item!r}")
        text = str(item).strip()
        if isinstance(item, int) and item < 0 or "," in text:
            raise DeviceError(f"not a device id: {item!r}")
        if not _DEVICE_ID.fullmatch(text):  # `none`, `cpu`, `cuda:0`, `gpu1`: no device's id
            raise DeviceError(
                f"not a device id: {item!r} (an index such as 0, or a UUID as nvidia-smi -L lists "
                "it: GPU-... or MIG-...; leave `devices` out for trials without devices)"
            )
        if text in ids:
            raise DeviceError(f"device {text} is listed twice")
        ids.append(text)
    if not ids:
        raise DeviceError("no device listed (leave `devices` out for trials without devices)")
    return tuple(ids)


_GPU_LINE = re.compile(r"^GPU (\d+):.*?(?:\(UUID: (\S+)\))?\s*$")
_MIG_LINE = re.compile(r"^MIG\b.*\(UUID: (MIG-\S+)\)\s*$")
CUDA_ENV = "CUDA_VISIBLE_DEVICES"
CUDA_ORDER_ENV = "CUDA_DEVICE_ORDER"


@dataclass(frozen=True)
class GpuListing:
    """What `nvidia-smi -L` says: each GPU's index and UUID, and each MIG instance's UUID with the
    GPU it is a part of.

    A GPU has one identity, its UUID, however a config or CUDA_VISIBLE_DEVICES names it (its
    index, its UUID, a prefix of it): the device locks are taken by that identity, so an agent
    given GPU 2 by index and another given it by UUID take turns, and agents confined to different
    GPUs that each see theirs as `0` (Slurm, containers) do not wait for each other."""

    gpus: tuple[tuple[str, str | None], ...] = ()
    migs: tuple[tuple[str, str], ...] = ()  # (MIG UUID, the identity of its GPU)

    @classmethod
    def parse(cls, listing: str) -> GpuListing:
        gpus: list[tuple[str, str | None]] = []
        migs: list[tuple[str, str]] = []
        for line in listing.splitlines():
            if match := _GPU_LINE.match(line.strip()):
                gpus.append((match.group(1), match.group(2)))
            elif (match := _MIG_LINE.match(line.strip())) and gpus:
                index, uuid = gpus[-1]  # nvidia-smi lists a GPU's instances under it
                migs.append((match.group(1), uuid or index))
        return cls(tuple(gpus), tuple(migs))

    def _named(self, device: str) -> str | None:
        """The UUID of the GPU or MIG instance `device` names, or None when none listed matches."""
        for index, uuid in self.gpus:
            if device == index:
                return uuid or index
            if uuid and device.startswith("GPU-") and uuid.startswith(device):
                return uuid
        return next(
            (mig for mig, _ in self.migs if device.startswith("MIG-") and mig.startswith(device)), None
        )

    def lists(self, device: str) -> bool:
        """Does `device` (an index, a UUID or a prefix of one) name a GPU or MIG instance listed?"""
        return self._named(device) is not None

    def shown(self) -> str:
        """The GPUs listed, as a message names them: `0, 1 (GPU-aaa, GPU-bbb)`."""
        uuids = [uuid for _, uuid in self.gpus if uuid]
        return ", ".join(index for index, _ in self.gpus) + (f" ({', '.join(uuids)})" if uuids else "")

    def parts(self, identity: str) -> tuple[str, ...]:
        """The MIG instances of the GPU `identity`: a trial given the whole GPU holds them too, so
        that no trial given one of its instances runs beside it, nor it beside one."""
        return tuple(mig for mig, gpu in self.migs if gpu == identity)

    def whole(self, identity: str) -> str | None:
        """The GPU the MIG instance `identity` is a part of (None for a whole GPU)."""
        return next((gpu for mig, gpu in self.migs if mig == identity), None)

    def identity(self, device: str) -> str:
        """The name of `device`'s lock: the UUID it names, else the id as given."""
        return self._named(device) or device

    def visible(self, visible: str | None) -> tuple[str, ...]:
        """The GPUs listed, within `CUDA_VISIBLE_DEVICES` when it is set: whole GPUs by index, and
        the MIG instances of a GPU split into them (a CUDA process sees one instance: each is a
        device of its own); or GPUs and MIG instances as that variable names them."""
        if visible is None:  # each GPU, or where it is split into MIG instances, each instance
            return tuple(
                device for index, uuid in self.gpus for device in (self.parts(uuid or index) or (index,))
            )
        kept: list[str] = []
        for item in (part.strip() for part in visible.split(",")):
            if not item:
                continue
            if item.startswith("-"):
                break  # CUDA ignores a negative id and everything after it
            if self._named(item) is not None:
                kept.append(item)
        return tuple(kept)


def visible_gpus(listing: str, visible: str | None) -> tuple[str, ...]:
    """The GPUs `nvidia-smi -L` lists, within `CUDA_VISIBLE_DEVICES` when it is set.

    A trial's device ids are what the trial's CUDA sees: where the agent itself is confined to
    some GPUs (a Slurm allocation), the ids it hands out are the allowed ones, as given."""
    return GpuListing.parse(listing).visible(visible)


def read_gpus() -> tuple[GpuListing | None, str | None]:
    """`nvidia-smi -L` on this host, or None and why not."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None, "found no nvidia-smi on PATH"
    try:
        listing = subprocess.run(
            [tool, "-L"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"could not run nvidia-smi ({exc})"
    if listing.returncode != 0:
        return None, f"saw nvidia-smi -L fail (exit {listing.returncode})"
    return GpuListing.parse(listing.stdout), None


def detect_gpus() -> tuple[tuple[str, ...], GpuListing | None, str | None]:
    """`devices: auto`: the GPUs this host offers, the listing they came from, and a note when
    none is found."""
    listing, why = read_gpus()
    if listing is None:
        return (), None, f"devices: auto {why}: trials run without devices"
    confined = os.environ.get(CUDA_ENV)
    gpus = listing.visible(confined)
    if not gpus:
        where = "nvidia-smi -L lists none"
        if confined is not None and listing.gpus:
            where = f"{CUDA_ENV}={confined!r} leaves none of the {len(listing.gpus)} nvidia-smi -L lists"
        return (), listing, f"devices: auto found no GPU ({where}): trials run without devices"
    return gpus, listing, None


@dataclass(frozen=True)
class DevicePlan:
    """The devices one agent hands out for one sweep, and how many each trial gets."""

    devices: tuple[str, ...] = ()
    per_trial: int = 1
    env_name: str = CUDA_ENV
    notes: tuple[str, ...] = field(default=())
    identities: tuple[str, ...] = ()  # each device's UUID, where nvidia-smi says which GPU it is
    found: bool = False  # `auto`: the ids are nvidia-smi's own, not written by the user
    parts: tuple[tuple[str, ...], ...] = ()  # each device's MIG instances, where it has some

    def identity(self, device: str) -> str:
        """`device`'s UUID where nvidia-smi said which GPU it is, else the id as given."""
        return self.identities[self.devices.index(device)] if self.identities else device

    def lock_names(self, device: str) -> tuple[str, ...]:
        """The locks a trial takes for `device`: its UUID where known, so that every name of one
        GPU excludes the others; for an id the user wrote, that id too, so that an agent that
        could not ask nvidia-smi (and locks the id alone) still excludes this one; for a GPU split
        into MIG instances, each instance too, so that a trial on the whole GPU and one on an
        instance of it never run at once."""
        identity = self.identity(device)
        parts = self.parts[self.devices.index(device)] if self.parts else ()
        if identity == device:
            return (device, *parts)
        return ((identity,) if self.found else (device, identity)) + parts

    @property
    def groups(self) -> int:
        """How many trials can hold devices at once (0: no devices)."""
        return len(self.devices) // self.per_trial

    def jobs(self, requested: int | None) -> tuple[int, str | None]:
        """The agent's `-j` with devices: the device groups when not given, capped when larger."""
        if not self.groups:
            return (requested or 1), None
        if requested is None:
            return self.groups, None
        if requested > self.groups:
            return self.groups, (
                f"-j {requested} capped to {self.groups}: {len(self.devices)} device(s), "
                f"{self.per_trial} per trial"
            )
        return requested, None


def plan_devices(devices: str | tuple[str, ...] | None, per_trial: int, env_name: str) -> DevicePlan:
    """Resolve a config's devices on this host (`auto` asks nvidia-smi once; so does a list given
    in CUDA_VISIBLE_DEVICES where nvidia-smi is there to say which GPU each id names)."""
    if devices is None:
        return DevicePlan(per_trial=per_trial, env_name=env_name)
    notes: list[str] = []
    listing: GpuListing | None = None
    auto = devices == AUTO
    if auto:
        devices, listing, note = detect_gpus()
        if note:
            notes.append(note)
    elif env_name == CUDA_ENV:  # a list: which GPU each id names, where nvidia-smi is there to say
        listing, _ = read_gpus()
        _check_each_listed(tuple(devices), listing)
    if devices and len(devices) < per_trial:
        # Run without devices, and every trial would see all of them: shared, which is what
        # devices are for avoiding. (An explicit list this short is refused at load.)
        raise UnusableDevices(
            f"devices: auto found {len(devices)} GPU(s) on this host ({','.join(devices)}), fewer than "
            f"devices_per_trial {per_trial}: run this sweep on a host with at least {per_trial}, or "
            "lower devices_per_trial"
        )
    identities = tuple(listing.identity(device) for device in devices) if listing else ()
    _check_each_gpu_once(tuple(devices), identities, listing)
    parts = tuple(listing.parts(identity) for identity in identities) if listing else ()
    return DevicePlan(tuple(devices), per_trial, env_name, tuple(notes), identities, auto, parts)


def _check_each_listed(devices: tuple[str, ...], listing: GpuListing | None) -> None:
    """An id that names no GPU nvidia-smi lists: a trial handed it would see no GPU at all, and run
    on the CPU or fail, far from the config that caused it."""
    if listing is None or not listing.gpus:
        return
    unknown = [device for device in devices if not listing.lists(device)]
    if unknown:
        named = ", ".join(unknown)
        raise UnusableDevices(
            f"devices: {named} {'is' if len(unknown) == 1 else 'are'} not a GPU of this host "
            f"(nvidia-smi -L lists {listing.shown()})"
        )


def _check_each_gpu_once(
    devices: tuple[str, ...], identities: tuple[str, ...], listing: GpuListing | None
) -> None:
    """Two ids of one GPU, or a GPU and one of its MIG instances, in one list: a trial given the
    one would wait for a trial given the other, and the agent would count them as two groups."""
    if listing is None:
        return
    twice = next((d for i, d in enumerate(identities) if d in identities[:i]), None)
    if twice is not None:
        named = [device for device, identity in zip(devices, identities, strict=True) if identity == twice]
        raise UnusableDevices(f"devices: {' and '.join(named)} name one GPU ({twice}): list each GPU once")
    for device, identity in zip(devices, identities, strict=True):
        gpu = listing.whole(identity)
        if gpu in identities:
            whole = devices[identities.index(gpu)]
            raise UnusableDevices(
                f"devices: {device} is a MIG instance of GPU {whole}, also listed: list the GPU or its "
                "instances, not both"
            )


def lock_dir() -> Path | None:
    """The namespace of the device locks `SWEEPER_DEVICE_LOCK_DIR` gives (tests, odd hosts), or
    None for the host's own: one fixed name per device, whatever the user's TMPDIR."""
    given = os.environ.get(LOCK_DIR_ENV)
    return Path(given) if given else None


# Where the lock files are where abstract sockets are not (not TMPDIR: it may be per user or job).
SHARED_LOCK_DIR = Path("/tmp" if os.name == "posix" else tempfile.gettempdir()) / "mlflow-sweeper-devices"


class DeviceLock:
    """One device's host-wide lock. Its descriptor, inherited by the trial's processes, keeps it
    held while any of them runs."""

    def __init__(self, namespace: Path | None, device: str):
        self.namespace = namespace
        self.device = device
        self._held: socket.socket | FileLock | None = None
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", device)
        self._path = (namespace or SHARED_LOCK_DIR) / f"device-{safe}.lock"

    def acquire(self) -> bool:
        """Take the lock if it is free now; False when another holder has it."""
        if sys.platform.startswith("linux"):
            return self._bind()
        lock = FileLock(str(self._path), mode=0o666, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        self._held = lock
        return True

    @property
    def address(self) -> str:
        """The abstract socket name of the lock on Linux: host-wide (per network namespace: agents
        in separate containers do not see each other's), bound by one socket at a time, whoever
        its user; no file, freed when its last descriptor closes."""
        plain = re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.device) is not None
        if self.namespace is None and plain:
            return f"\0mlflow-sweeper/device/{self.device}"
        named = f"{self.namespace or ''}/{self.device}"
        return "\0mlflow-sweeper/" + hashlib.sha256(named.encode()).hexdigest()[:40]

    def _bind(self) -> bool:
        held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            held.bind(self.address)
        except OSError:
            held.close()
            return False
        self._held = held
        return True

    @property
    def fd(self) -> int | None:
        held = self._held
        if isinstance(held, socket.socket):
            return held.fileno()
        return getattr(getattr(held, "_context", None), "lock_file_fd", None)

    def release(self) -> None:
        held, self._held = self._held, None
        if isinstance(held, socket.socket):
            held.close()
        elif held is not None:
            held.release()


def _shared_directory(path: Path) -> None:
    """The file locks' directory, writable by every user as the temp directory is (sticky)."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # another user's: they made it shared
        os.chmod(path, 0o1777)


class DeviceHold:
    """Devices one trial holds: their ids, the environment that carries them, and their locks."""

    def __init__(self, ids: tuple[str, ...], env_name: str, locks: Sequence[DeviceLock] = ()):
        self.ids = ids
        self.env_name = env_name
        self._locks = list(locks)
        self._release = threading.Lock()

    @property
    def environment(self) -> dict[str, str]:
        """The variable carrying the devices; for CUDA, also the order nvidia-smi numbers GPUs in
        (unless the agent's environment chose one): CUDA's own default order, fastest first, can
        number a host's mixed GPUs otherwise, and `2` would then be another GPU than the one
        nvidia-smi calls 2, whose lock the trial holds."""
        if not self.ids:
            return {}
        found = {self.env_name: ",".join(self.ids)}
        if self.env_name == CUDA_ENV and CUDA_ORDER_ENV not in os.environ:
            found[CUDA_ORDER_ENV] = "PCI_BUS_ID"
        return found

    @property
    def tags(self) -> dict[str, str]:
        return {DEVICES_TAG: ",".join(self.ids)} if self.ids else {}

    @property
    def lock_fds(self) -> tuple[int, ...]:
        """The locks' file descriptors, for the trial's process to inherit: an OS lock lasts
        while any process holds its descriptor, so a trial its agent left running (the agent was
        killed) keeps its devices until it ends, and no other trial is given them meanwhile."""
        return tuple(lock.fd for lock in self._locks if isinstance(lock.fd, int))

    def release(self) -> None:
        with self._release:
            locks, self._locks = self._locks, []
        for lock in locks:
            lock.release()

    def __enter__(self) -> DeviceHold:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


NO_DEVICES = DeviceHold((), "")


class DevicePool:
    """Hands each trial a group of free devices, host-wide, blocking until one is free."""

    def __init__(self, plan: DevicePlan, directory: Path | None = None):
        self.plan = plan
        self.directory = directory or lock_dir()
        self._mutex = threading.Lock()  # this agent's workers take turns at the locks
        self._waiting: list[DeviceLock] = []  # this agent's marks: it waits for these devices
        self._waiters = 0  # this agent's workers waiting

    def try_acquire(self) -> DeviceHold | None:
        """A group of free devices, locked, or None when fewer than needed are free now."""
        if not sys.platform.startswith("linux"):
            _shared_directory(self.directory or SHARED_LOCK_DIR)
        with self._mutex:
            held: list[tuple[str, list[DeviceLock]]] = []
            for device in self.plan.devices:
                if self._another_agent_waits(device):
                    continue  # its turn: an agent releasing a device would take it straight back
                locks = self._lock(device)
                if locks is None:
                    continue
                held.append((device, locks))
                if len(held) == self.plan.per_trial:
                    taken = [lock for _, locks in held for lock in locks]
                    return DeviceHold(tuple(d for d, _ in held), self.plan.env_name, taken)
            for _, locks in held:
                for lock in locks:
                    lock.release()
            return None

    def _another_agent_waits(self, device: str) -> bool:
        """Does another agent on this host wait for `device` (it holds the device's waiting mark)?
        Asked before taking a device, so agents sharing devices take turns. One bind at most."""
        mark = self._mark(device)
        if any(held.device == mark.device for held in self._waiting):
            return False  # the waiter is this agent
        if not mark.acquire():
            return True
        mark.release()
        return False

    def _wait_in_line(self, waiting: bool) -> None:
        """Hold (waiting=True: asked at every poll) or give up (False) this agent's marks on its
        devices while one of its workers waits: a mark another waiter holds is taken once that one
        has its device; the marks are freed once nobody here waits."""
        with self._mutex:
            if waiting:
                held = {mark.device for mark in self._waiting}
                for device in self.plan.devices:
                    mark = self._mark(device)
                    if mark.device not in held and mark.acquire():
                        self._waiting.append(mark)
            elif self._waiters == 0:
                for mark in self._waiting:
                    mark.release()
                self._waiting = []

    def _mark(self, device: str) -> DeviceLock:
        """The lock an agent holds while it waits for `device`, named by the GPU's UUID where
        known (every agent's name of one GPU meets there): an agent about to take the device back
        after its trial leaves it to the waiter."""
        return DeviceLock(self.directory, f"{self.plan.identity(device)}.waiting")

    def _lock(self, device: str) -> list[DeviceLock] | None:
        """Every lock of `device`, taken; None (and none kept) when one is held elsewhere."""
        taken: list[DeviceLock] = []
        for name in self.plan.lock_names(device):
            lock = DeviceLock(self.directory, name)
            if not lock.acquire():
                for earlier in taken:
                    earlier.release()
                return None
            taken.append(lock)
        return taken

    def acquire(
        self,
        stop: threading.Event,
        waiting: Callable[[str], None] = lambda why: None,
        needed: Callable[[], bool] = lambda: True,
    ) -> DeviceHold | None:
        """Wait for a group of free devices; None when `stop` is set first, or when they are no
        longer `needed` (asked now and then: the sweep may end while another trial holds them).
        `waiting` is told why, once, when none is free at first and they are needed."""
        if stop.is_set():
            return None
        hold = self.try_acquire()
        if hold is not None:
            return hold
        with self._mutex:
            self._waiters += 1
        try:
            told, polls = False, 0
            while not stop.is_set():
                self._wait_in_line(True)
                if polls % NEEDED_EVERY == 0 and not needed():
                    return None
                if not told:
                    told = True
                    waiting(self.why_waiting())
                polls += 1
                stop.wait(POLL_SECONDS)
                hold = self.try_acquire()
                if hold is not None:
                    return hold
            return None
        finally:
            with self._mutex:
                self._waiters -= 1
            self._wait_in_line(False)

    def why_waiting(self) -> str:
        plan = self.plan
        group = f"{plan.per_trial} free device{'s' if plan.per_trial > 1 else ''}"
        return (
            f"waiting for {group} of {','.join(plan.devices)}: other trials on this host hold them "
            f"({plan.env_name}); the trial starts when they end"
        )


class NoDevicePool:
    """Trials without devices: nothing to wait for, nothing set."""

    plan = DevicePlan()

    def try_acquire(self) -> DeviceHold:
        return NO_DEVICES

    def acquire(
        self,
        stop: threading.Event,
        waiting: Callable[[str], None] = lambda why: None,
        needed: Callable[[], bool] = lambda: True,
    ) -> DeviceHold:
        return NO_DEVICES


NO_DEVICE_POOL = NoDevicePool()


def device_pool(plan: DevicePlan) -> DevicePool | NoDevicePool:
    return DevicePool(plan) if plan.groups else NO_DEVICE_POOL


# ---- config keys ---------------------------------------------------------------------------------

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_devices(where, key: str, value: object) -> str | tuple[str, ...]:
    """`devices`: auto | [0, 1] | "0,1"."""
    try:
        return parse_devices(value)
    except DeviceError as exc:
        raise ConfigProblem(key, str(exc)) from None


def load_env_name(where, key: str, value: object) -> str:
    """`device_env`: the name of an environment variable."""
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ConfigProblem(key, f"expected the name of an environment variable, got {value!r}")
    if value.upper().startswith(RESERVED_ENV_PREFIXES) or value.upper() in RESERVED_ENV:
        raise ConfigProblem(
            key,
            f"{value} is set by the sweeper or MLflow for every trial: name the variable that carries "
            "the devices",
        )
    return value
