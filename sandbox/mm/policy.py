"""Fault policies: page-fault handling programmable from Python.

A policy is a callable given a `FaultContext` when a guest touches a page that is not
mapped yet (the demand-paging rung of the fault ladder). It may return:

- `None`: observe only; the ordinary handling follows (zero page, or file contents);
- `Supply(data)`: the page's contents (up to a page; the rest is zero);
- `FaultAround(n)`: handle this page as usual and map up to `n` following pages of the same
  region at once (Linux does this for file pages), so later touches do not fault;
- `HugePage()`: map the 2 MiB-aligned block around the address with one 2 MiB entry, when the
  block lies inside the region and nothing in it is mapped yet (else: as usual);
- `Deny(reason)`: refuse the access; the guest gets SIGSEGV (SEGV_ACCERR).

Policies run in order; the first one that returns a decision wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.mm.vma import Access, Region

if TYPE_CHECKING:
    from sandbox.mm.aspace import AddressSpace


@dataclass(frozen=True)
class FaultContext:
    """What a policy is told about a fault."""

    pid: int
    address: int
    access: str  # "read", "write" or "exec"
    region: Region
    space: AddressSpace

    @property
    def page(self) -> int:
        """The faulting page's address."""
        return self.address & ~(self.region.page_size - 1)


@dataclass(frozen=True)
class Supply:
    data: bytes


@dataclass(frozen=True)
class FaultAround:
    pages: int


@dataclass(frozen=True)
class HugePage:
    pass


@dataclass(frozen=True)
class Deny:
    reason: str = "denied by a fault policy"


Decision = Supply | FaultAround | HugePage | Deny | None
FaultPolicy = Callable[[FaultContext], Decision]


def fault_around(pages: int) -> FaultPolicy:
    """The built-in policy behind --fault-around N: every demand fault also maps up to N
    following pages of its region (Linux does this for file pages, `fault_around_bytes`)."""

    def policy(fault: FaultContext) -> Decision:
        return FaultAround(pages) if fault.region.page_size == 4096 else None

    policy.__name__ = f"fault_around_{pages}"
    return policy


def access_name(access: int) -> str:
    return (Access(access).name or "READ").lower()
