"""sandbox: run x86-64 Linux programs in Unicorn under a small kernel's memory manager."""

__version__ = "0.1.0"
