// The shop's state, in memory: what the job handlers change. A real shop
// keeps it in its database; here it lives as long as the server.

const reservations = new Map(); // reservation id -> order id
const charges = new Map(); // idempotency key -> charge
let next = 1;

export const shop = {
  reserve(orderId) {
    const id = `res_${next++}`;
    reservations.set(id, orderId);
    return id;
  },
  release(reservationId) {
    return reservations.delete(reservationId);
  },
  // charge charges once per idempotency key: a repeated request (a retry
  // after a lost reply) gets the first charge back.
  charge(key, orderId, amount) {
    if (!charges.has(key)) charges.set(key, { chargeId: `ch_${next++}`, orderId, amount, refunded: false });
    return charges.get(key);
  },
  refund(chargeId) {
    for (const c of charges.values()) {
      if (c.chargeId === chargeId) {
        c.refunded = true;
        return `re_${chargeId}`;
      }
    }
    return null;
  },
};
