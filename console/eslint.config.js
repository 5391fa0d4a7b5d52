// The console's lint: the workspace's strict TypeScript rules, and React's hooks rules.
import reactHooks from "eslint-plugin-react-hooks";

import base from "../eslint.config.js";

export default [...base, reactHooks.configs.flat["recommended-latest"] ?? reactHooks.configs.flat.recommended];
