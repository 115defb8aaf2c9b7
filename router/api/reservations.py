"""Offers to agents (reservations): the caller's open offers, accepting or rejecting one, and why
a contact was offered to whom."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields

from router.api.auth import current_staff
from router.api.common import instant, make_blueprint, now, protected, responds
from router.core.domain import StaffRole
from router.runtime import runtime
from router.services import offers, reservations
from router.services.offers import Assignments, Offer, ReservationView

blp = make_blueprint("reservations", "Offers of contacts to agents")

ID = "int(max=2147483647)"


class OfferSchema(Schema):
    """An open offer of a contact to the caller."""

    reservation_id = fields.Integer(required=True)
    contact_id = fields.Integer(required=True)
    reference = fields.String(required=True)
    channel = fields.String(required=True)
    queue = fields.String(allow_none=True)
    priority = fields.Integer()
    severity = fields.String()
    due_at = instant(description="The contact's SLA due time (null: no SLA)")
    offered_at = instant()
    expires_at = instant()
    seconds_left = fields.Integer(metadata={"description": "Until the offer moves on"})


class OffersSchema(Schema):
    """The caller's open offers, soonest to expire first."""

    items = fields.List(fields.Nested(OfferSchema), required=True)


class ReservationSchema(Schema):
    """An offer of a contact to an agent and how it ended."""

    id = fields.Integer(required=True)
    contact_id = fields.Integer(required=True)
    agent_id = fields.Integer(required=True)
    channel = fields.String()
    status = fields.String(metadata={"description": "offered, accepted, rejected or expired"})
    offered_at = instant()
    expires_at = instant()
    decided_at = instant()
    explain = fields.Dict(
        metadata={"description": "The queue's strategy and every agent considered, and why not"}
    )


class AssignmentsSchema(Schema):
    """A contact's assigned agent and every offer made of it."""

    contact_id = fields.Integer(required=True)
    status = fields.String()
    assigned_agent_id = fields.Integer(allow_none=True)
    reservations = fields.List(fields.Nested(ReservationSchema), required=True)


@blp.route("/agents/me/offers")
class MyOffers(MethodView):
    """The caller's open offers."""

    @protected(blp, StaffRole.VIEWER)
    @blp.response(200, OffersSchema)
    @responds(blp, 404)
    def get(self) -> dict[str, Any]:
        """List the caller's open offers (404: the caller is not an agent)."""
        mine: tuple[Offer, ...] = offers.offers_for(runtime().db, current_staff().id, now())
        return {"items": mine}


@blp.route(f"/reservations/<{ID}:reservation_id>/accept")
class AcceptOffer(MethodView):
    """Accept an offer."""

    @protected(blp, StaffRole.VIEWER)
    @blp.response(200, ReservationSchema)
    @responds(blp, 404, 409)
    def post(self, reservation_id: int) -> ReservationView:
        """Accept one's own open offer: the contact is assigned to the caller (409: not yours,
        expired or already decided; the reason says which)."""
        return reservations.accept(runtime().db, reservation_id, current_staff().id, now())


@blp.route(f"/reservations/<{ID}:reservation_id>/reject")
class RejectOffer(MethodView):
    """Reject an offer."""

    @protected(blp, StaffRole.VIEWER)
    @blp.response(200, ReservationSchema)
    @responds(blp, 404, 409)
    def post(self, reservation_id: int) -> ReservationView:
        """Reject one's own open offer: the contact is offered to the next agent (409: not
        yours or already decided)."""
        rt = runtime()
        return reservations.reject(rt.db, rt.settings, reservation_id, current_staff().id, now())


@blp.route(f"/contacts/<{ID}:contact_id>/assignments")
class ContactAssignments(MethodView):
    """Why a contact was offered to whom."""

    @protected(blp, StaffRole.VIEWER)
    @blp.response(200, AssignmentsSchema)
    @responds(blp, 404)
    def get(self, contact_id: int) -> Assignments:
        """Show every offer made of a contact, with each one's explain."""
        return offers.assignment_explain(runtime().db, contact_id)
