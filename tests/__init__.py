"""Tests for fluxcompose (a package so helpers like tests.fakeapi can be imported)."""
