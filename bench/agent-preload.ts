// Preloaded (--import) into runspec-room under test: memory reports only; its event-loop delay is not measured.
import { installAgent } from './agent.ts';

installAgent({ eventLoopDelay: false });
