"""A policy plugin for skiff (world `policy` of skiff:plugin@0.2.0).

before-pull: denies a reference whose registry is not listed in the setting `registries`
(comma-separated, e.g. `127.0.0.1:5000,docker.io`; absent means every registry is allowed) and,
when the setting `require_digest` is `true`, a reference not pinned by `@sha256:`.
before-create: denies a privileged container; otherwise allows it with one edit, the label
`skiff.policy=checked`.
validate: denies the final spec when it is privileged (another plugin may have turned it on),
otherwise allows it.
"""

from wit_world import exports
from wit_world.imports import host, types


def registry_of(reference: str) -> str:
    """The registry part of a reference, by Docker's rule (no registry means docker.io)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def allowed_registries() -> list[str] | None:
    """The setting `registries` as a list, or None when it is absent (all allowed)."""
    value = host.setting("registries")
    if value is None:
        return None
    return [r.strip() for r in value.split(",") if r.strip()]


class BeforePull(exports.BeforePull):
    def before_pull(self, reference: str) -> types.PullDecision:
        registry = registry_of(reference)
        allowed = allowed_registries()
        if allowed is not None and registry not in allowed:
            return types.PullDecision_Deny(
                f"registry {registry} is not allowed (allowed: {', '.join(allowed) or 'none'})"
            )
        if host.setting("require_digest") == "true" and "@sha256:" not in reference:
            return types.PullDecision_Deny(
                f"{reference} is not pinned by digest (require_digest is on)"
            )
        host.log(types.Level.DEBUG, f"{reference}: allowed")
        return types.PullDecision_Keep()


class BeforeCreate(exports.BeforeCreate):
    def before_create(self, spec: types.ContainerSpec) -> types.CreateDecision:
        if spec.privileged:
            return types.CreateDecision_Deny("privileged containers are not allowed")
        return types.CreateDecision_Allow([types.Edit_SetLabel(("skiff.policy", "checked"))])


class Validate(exports.Validate):
    def validate(self, spec: types.ContainerSpec, changes: list[types.Change]) -> types.Verdict:
        if spec.privileged:
            who = [c.plugin for c in changes if c.key == "privileged"]
            by = f" (set by plugin {', '.join(who)})" if who else ""
            return types.Verdict_Deny(f"the final spec is privileged{by}; privileged is not allowed")
        return types.Verdict_Allow()
