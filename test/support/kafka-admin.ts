/**
 * Kafka's admin requests for the tests' topic setup, from this process (kafkajs, a devDependency):
 * one client per broker address, kept for the process. Each of Kafka's own command-line tools is a
 * JVM of its own, about 1.5 s and 2 s of CPU a topic, and the suite makes hundreds of topics side by
 * side on two cores.
 */
import { type Admin, Kafka, logLevel } from "kafkajs";

const admins = new Map<string, Promise<Admin>>();

/** The admin client of `brokers`, connected; a failed connect is not kept. */
export function adminOf(brokers: string): Promise<Admin> {
  let admin = admins.get(brokers);
  if (!admin) {
    const client = new Kafka({ clientId: "kgw-test-admin", brokers: brokers.split(","), logLevel: logLevel.NOTHING, retry: { retries: 8, initialRetryTime: 100 } }).admin();
    admin = client.connect().then(() => client);
    admins.set(brokers, admin);
    admin.catch(() => admins.delete(brokers));
  }
  return admin;
}
