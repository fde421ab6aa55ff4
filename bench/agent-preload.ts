// Preloaded (--import) into runspec-room under test: memory and event-loop delay reports, as the baselines give.
import { installAgent } from './agent.ts';

installAgent({ eventLoopDelay: true });
