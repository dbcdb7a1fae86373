import { registerBrokerTeardown } from "./kafka";

registerBrokerTeardown();
