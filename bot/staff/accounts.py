"""Agent accounts: argon2id password hashes, create / disable / enable / list.

Used by the inbox's admin routes and by the command line:

    python -m bot agents add EMAIL --name NAME [--role agent|admin|editor]   (password from stdin or a prompt)
    python -m bot agents disable EMAIL
    python -m bot agents enable EMAIL
    python -m bot agents list
"""
from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..store.models import AGENT_ROLES, Agent, AgentSession

EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
UI_LANGUAGES = ("en", "de")

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a real password, only for constant timing")


class AccountError(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(matches, a new hash when the parameters changed). CPU-heavy: call it off the event loop."""
    try:
        _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if stored_hash is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored_hash) else None)


def check_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")
    return password


def normalise_email(email: object) -> str:
    if not isinstance(email, str) or not EMAIL_RE.match(email.strip()) or len(email.strip()) > 320:
        raise AccountError("a valid email address is required")
    return email.strip().lower()


def agent_dict(a: Agent, online: bool | None = None) -> dict:
    out = {"id": a.public_id, "email": a.email, "name": a.name, "role": a.role, "active": a.active,
           "language": a.language}
    if online is not None:
        out["online"] = online
    return out


async def find_by_email(session: AsyncSession, email: str) -> Agent | None:
    return (await session.execute(select(Agent).where(Agent.email == email.strip().lower()))).scalar_one_or_none()


async def create_agent(session: AsyncSession, email: object, name: object, role: object, password_hash: str,
                       language: object = "en") -> Agent:
    """Add an agent (the caller hashed the password, off the event loop). Commits."""
    email = normalise_email(email)
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        raise AccountError("a name of 1 to 200 characters is required")
    if role not in AGENT_ROLES:
        raise AccountError(f"the role must be one of {', '.join(AGENT_ROLES)}")
    if language not in UI_LANGUAGES:
        raise AccountError(f"the language must be one of {', '.join(UI_LANGUAGES)}")
    if await find_by_email(session, email) is not None:
        raise AccountError(f"an agent with the email {email} exists already", status=409)
    agent = Agent(email=email, name=name.strip(), role=role, password_hash=password_hash, active=True,
                  language=language)
    session.add(agent)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise AccountError(f"an agent with the email {email} exists already", status=409) from None
    return agent


async def set_active(session: AsyncSession, agent: Agent, active: bool) -> Agent:
    """Disable (signing the agent out everywhere) or enable an agent. Commits."""
    agent.active = active
    if not active:
        agent.last_seen_at = None
        await session.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id))
    await session.commit()
    return agent


async def list_agents(session: AsyncSession) -> list[Agent]:
    return list((await session.execute(select(Agent).order_by(Agent.name, Agent.id))).scalars().all())


# --- command line ---------------------------------------------------------------------------------

def cli(args) -> int:
    """``python -m bot agents ...`` (see the module docstring)."""
    import asyncio
    import getpass
    import sys

    from ..settings import Settings
    from ..store.db import make_engine, sessionmaker, upgrade

    from knowledge_base.config import SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        return 2

    password_hash = None
    if args.agents_cmd == "add":
        if sys.stdin.isatty():
            password = getpass.getpass(f"Password for {args.email}: ")
            if getpass.getpass("Again: ") != password:
                print("error: the passwords differ", file=sys.stderr)
                return 2
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        try:
            password_hash = hash_password(check_password(password))
        except AccountError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    async def run() -> int:
        await upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            async with sessionmaker(engine)() as session:
                if args.agents_cmd == "add":
                    agent = await create_agent(session, args.email, args.name, args.role, password_hash,
                                               args.language)
                    print(f"added {agent.role} {agent.name} <{agent.email}>")
                elif args.agents_cmd in ("disable", "enable"):
                    agent = await find_by_email(session, args.email)
                    if agent is None:
                        print(f"error: no agent with the email {args.email}", file=sys.stderr)
                        return 1
                    await set_active(session, agent, args.agents_cmd == "enable")
                    print(f"{args.agents_cmd}d {agent.name} <{agent.email}>")
                else:
                    for a in await list_agents(session):
                        print(f"{a.email}\t{a.name}\t{a.role}\t{'active' if a.active else 'disabled'}")
        except AccountError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(run())


def add_cli(sub) -> None:
    p = sub.add_parser("agents", help="manage the agent inbox's accounts")
    asub = p.add_subparsers(dest="agents_cmd", required=True)
    add = asub.add_parser("add", help="add an agent; the password is read from stdin or asked for")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=AGENT_ROLES, default="agent")
    add.add_argument("--language", choices=UI_LANGUAGES, default="en", help="language of the inbox page")
    for name, help_ in (("disable", "disable an agent (signs them out everywhere)"), ("enable", "enable an agent again")):
        c = asub.add_parser(name, help=help_)
        c.add_argument("email")
    asub.add_parser("list", help="list the agents")
    p.set_defaults(func=cli)
