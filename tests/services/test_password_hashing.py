"""Staff passwords outside the tests: argon2id at no less than OWASP's minimum.

The test process hashes at argon2's lowest cost (``tests/conftest.py:
cheap_password_hashing``); these tests hold what intake does everywhere else to the
production strength, through the module and through a real ``intake staff add`` process.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from argon2 import Type, extract_parameters
from sqlalchemy import create_engine, select

from intake.db.staff_models import StaffAccount
from tests.conftest import PRODUCTION_HASHER, SMALL_RULES, intake_command, subprocess_env

# OWASP's password storage cheat sheet: argon2id with at least 19 MiB and 2 passes.
MIN_MEMORY_KIB = 19 * 1024
MIN_PASSES = 2


def test_the_production_hasher_is_argon2id_at_owasp_strength_or_more() -> None:
    assert PRODUCTION_HASHER.type is Type.ID
    assert PRODUCTION_HASHER.memory_cost >= MIN_MEMORY_KIB
    assert PRODUCTION_HASHER.time_cost >= MIN_PASSES


def test_an_account_added_by_the_command_is_hashed_at_that_strength(
        sqlite_url: str, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("a long enough password for the test\n")
    subprocess.run(
        [*intake_command(), "staff", "add", "--email", "clerk@parks.example.gov",
         "--agency", "parks", "--role", "agent", "--password-file", str(password_file)],
        env=subprocess_env(INTAKE_DATABASE_URL=sqlite_url, INTAKE_RULES=str(SMALL_RULES),
                           INTAKE_INSTANCE_PATH=str(tmp_path / "instance")),
        check=True, capture_output=True, timeout=120)
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        stored = conn.scalar(select(StaffAccount.password_hash))
    engine.dispose()
    assert stored is not None
    parameters = extract_parameters(stored)
    assert parameters.type is Type.ID
    assert parameters.memory_cost == PRODUCTION_HASHER.memory_cost
    assert parameters.time_cost == PRODUCTION_HASHER.time_cost
