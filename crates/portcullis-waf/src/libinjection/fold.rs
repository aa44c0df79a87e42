// portcullis: `SqliState::fold_tokens` (libinjection_sqli.c's
// `libinjection_sqli_fold`) and its helpers, moved out of mod.rs.

use super::*;

mod three;

impl<'a> SqliState<'a> {
    pub fn fold_tokens(&mut self) -> usize {
        /*
         * This implementation exactly matches the C version's control flow structure because
         * the original separate Rust folding functions had subtle differences in behavior:
         * 
         * 1. The C version uses a single large function with else-if chains that ensure
         *    exactly one folding rule executes per main loop iteration
         * 2. Some C folding rules fall through without 'continue', allowing multiple 
         *    rules to be checked in sequence before restarting the main loop
         * 3. The aggressive left pointer resets (left = 0) in C cause immediate restart
         *    from the beginning of the token array, enabling cascading folding effects
         * 4. The stats_folds incrementing patterns differ between 2-token and 3-token rules
         * 
         * The separate function approach in Rust couldn't replicate these nuances exactly,
         * particularly the fall-through behavior and the precise timing of main loop restarts.
         * By inlining all the logic with the exact same control flow as C, we ensure
         * identical folding behavior that produces matching fingerprints.
         */
        let mut last_comment = Token::new();
        let mut tokenizer = SqliTokenizer::new(self.input, self.flags);
        
        // Clear and resize token vec
        self.token_vec.clear();
        self.token_vec.resize(LIBINJECTION_SQLI_MAX_TOKENS + 3, Token::new());
        
        // pos is the position of where the NEXT token goes
        #[allow(unused_assignments)] // Follows C implementation - pos initially 0, then set to 1 if real token found
        let mut pos = 0usize;
        // left is a count of how many tokens are already folded or processed
        let mut left = 0usize;
        let mut more = true;
        
        // Phase 1: Skip all initial comments, right-parens and unary operators (matches C lines 1366-1386)
        // This matches C's initial phase exactly - put tokens in tokenvec[0] and skip unwanted ones
        while more {
            if let Some(token) = tokenizer.next_token() {
                // Count all tokens processed for stats_tokens
                self.stats_tokens += 1;
                
                self.token_vec[0] = token.clone();
                if !(token.token_type == TokenType::Comment ||
                     token.token_type == TokenType::LeftParenthesis ||
                     token.token_type == TokenType::SqlType ||
                     self.is_unary_op(&token)) {
                    // Found a real token, keep it at position 0
                    break;
                }
                // Otherwise continue skipping - comments are ignored in this phase
            } else {
                more = false;
            }
        }
        
        if !more {
            // If input was only comments, unary or (, then exit (matches C lines 1380-1382)
            // But first copy tokenizer statistics so they're available for reparse detection
            self.stats_comment_c = tokenizer.stats_comment_c;
            self.stats_comment_ddw = tokenizer.stats_comment_ddw;
            self.stats_comment_ddx = tokenizer.stats_comment_ddx;
            self.stats_comment_hash = tokenizer.stats_comment_hash;
            return 0;
        } else {
            // it's some other token - first real token is now at position 0
            pos = 1;
        }
        
        // Main folding loop - matches C libinjection_sqli_fold exactly
        loop {
            // Do we have all the max number of tokens? If so, do some special cases for 5 tokens
            if pos >= LIBINJECTION_SQLI_MAX_TOKENS {
                if (self.token_vec[0].token_type == TokenType::Number &&
                    (self.token_vec[1].token_type == TokenType::Operator ||
                     self.token_vec[1].token_type == TokenType::Comma) &&
                    self.token_vec[2].token_type == TokenType::LeftParenthesis &&
                    self.token_vec[3].token_type == TokenType::Number &&
                    self.token_vec[4].token_type == TokenType::RightParenthesis) ||
                   (self.token_vec[0].token_type == TokenType::Bareword &&
                    self.token_vec[1].token_type == TokenType::Operator &&
                    self.token_vec[2].token_type == TokenType::LeftParenthesis &&
                    (self.token_vec[3].token_type == TokenType::Bareword ||
                     self.token_vec[3].token_type == TokenType::Number) &&
                    self.token_vec[4].token_type == TokenType::RightParenthesis) ||
                   (self.token_vec[0].token_type == TokenType::Number &&
                    self.token_vec[1].token_type == TokenType::RightParenthesis &&
                    self.token_vec[2].token_type == TokenType::Comma &&
                    self.token_vec[3].token_type == TokenType::LeftParenthesis &&
                    self.token_vec[4].token_type == TokenType::Number) ||
                   (self.token_vec[0].token_type == TokenType::Bareword &&
                    self.token_vec[1].token_type == TokenType::RightParenthesis &&
                    self.token_vec[2].token_type == TokenType::Operator &&
                    self.token_vec[3].token_type == TokenType::LeftParenthesis &&
                    self.token_vec[4].token_type == TokenType::Bareword) {
                    if pos > LIBINJECTION_SQLI_MAX_TOKENS {
                        // Copy token[5] to token[1], reset to position 2
                        self.token_vec[1] = self.token_vec[LIBINJECTION_SQLI_MAX_TOKENS].clone();
                        pos = 2;
                        left = 0;
                    } else {
                        // Reset to position 1 to continue processing
                        pos = 1;
                        left = 0;
                    }
                }
            }
            
            // Check termination condition - exit if no more tokens or we have enough
            if !more || left >= LIBINJECTION_SQLI_MAX_TOKENS {
                left = pos;
                break;
            }
            
            // Get up to two tokens
            self.read_tokens(&mut tokenizer, &mut last_comment, &mut more, &mut pos, left, 2);
            
            // Did we get 2 tokens? If not then we are done
            if pos - left < 2 {
                left = pos;
                continue;
            }
            
            /* ALL 2-TOKEN FOLDING RULES - exactly matching C implementation with else-if chain */
            
            // FOLD: "ss" -> "s" - from apply_two_token_fold 
            // "foo" "bar" is valid SQL, just ignore second string
            if self.token_vec[left].token_type == TokenType::String &&
               self.token_vec[left + 1].token_type == TokenType::String {
                pos -= 1;
                self.stats_folds += 1;
                continue;
            
            // FOLD: ";;" -> ";" - from apply_two_token_fold
            // fold away repeated semicolons  
            } else if self.token_vec[left].token_type == TokenType::Semicolon &&
                      self.token_vec[left + 1].token_type == TokenType::Semicolon {
                pos -= 1;
                self.stats_folds += 1;
                continue;
            
            // FOLD: (operator|logic_operator) + (unary_op|sqltype) -> operator - from apply_two_token_fold
            } else if (self.token_vec[left].token_type == TokenType::Operator ||
                       self.token_vec[left].token_type == TokenType::LogicOperator) &&
                      (self.is_unary_op(&self.token_vec[left + 1]) ||
                       self.token_vec[left + 1].token_type == TokenType::SqlType) {
                pos -= 1;
                self.stats_folds += 1;
                left = 0;
                continue;
            
            // FOLD: leftparens + unary_op -> leftparens - from apply_two_token_fold
            } else if self.token_vec[left].token_type == TokenType::LeftParenthesis &&
                      self.is_unary_op(&self.token_vec[left + 1]) {
                pos -= 1;
                self.stats_folds += 1;
                if left > 0 {
                    left -= 1;
                }
                continue;
            
            // FOLD: word merging - from syntax_merge_words inlined
            } else if {
                // syntax_merge_words logic inlined
                let a_type = self.token_vec[left].token_type;
                let b_type = self.token_vec[left + 1].token_type;
                
                // Check if token a is of right type
                (a_type == TokenType::Keyword || a_type == TokenType::Bareword ||
                 a_type == TokenType::Operator || a_type == TokenType::Union ||
                 a_type == TokenType::Function || a_type == TokenType::Expression ||
                 a_type == TokenType::Tsql || a_type == TokenType::SqlType) &&
                
                // Check if token b is of right type  
                (b_type == TokenType::Keyword || b_type == TokenType::Bareword ||
                 b_type == TokenType::Operator || b_type == TokenType::Union ||
                 b_type == TokenType::Function || b_type == TokenType::Expression ||
                 b_type == TokenType::Tsql || b_type == TokenType::SqlType ||
                 b_type == TokenType::LogicOperator) &&
                
                {
                    let sz1 = self.token_vec[left].len;
                    let sz2 = self.token_vec[left + 1].len;
                    let sz3 = sz1 + sz2 + 1; // +1 for space in the middle
                    
                    if sz3 < 32 { // make sure there is room for ending null
                        // Create merged string: a.val + ' ' + b.val
                        let a_val = self.token_vec[left].value_as_str();
                        let b_val = self.token_vec[left + 1].value_as_str();
                        // portcullis: merged on the stack (upstream used `format!`
                        // and `to_ascii_uppercase`; `lookup_word` upper-cases itself).
                        let mut merged = [0u8; 80];
                        let merged_len = a_val.len() + 1 + b_val.len();
                        let merged_original = if merged_len <= merged.len() {
                            merged[..a_val.len()].copy_from_slice(a_val.as_bytes());
                            merged[a_val.len()] = b' ';
                            merged[a_val.len() + 1..merged_len].copy_from_slice(b_val.as_bytes());
                            core::str::from_utf8(&merged[..merged_len]).unwrap_or("")
                        } else {
                            ""
                        };
                        
                        // portcullis: merge whenever the pair is in the
                        // table, even as a bareword (`LOCK IN`), as C does.
                        let lookup_result = sqli_data::lookup_keyword(merged_original.as_bytes());
                        
                        if let Some(lookup_result) = lookup_result {
                            // Update the first token with merged value and new type
                            self.token_vec[left].token_type = lookup_result;
                            // Update the value - store the original case version, not uppercase
                            let merged_bytes = merged_original.as_bytes();
                            let copy_len = merged_bytes.len().min(31); // Leave space for null terminator
                            self.token_vec[left].val[..copy_len].copy_from_slice(&merged_bytes[..copy_len]);
                            self.token_vec[left].len = copy_len;
                            true
                        } else {
                            false
                        }
                    } else {
                        false
                    }
                }
            } {
                pos -= 1;
                self.stats_folds += 1;
                if left > 0 {
                    left -= 1;
                }
                continue;
            
            // FOLD: semicolon + function(IF) -> TSQL - from apply_two_token_fold  
            } else if self.token_vec[left].token_type == TokenType::Semicolon &&
                      self.token_vec[left + 1].token_type == TokenType::Function &&
                      self.token_vec[left + 1].len >= 2 &&
                      (self.token_vec[left + 1].val[0] == b'I' || self.token_vec[left + 1].val[0] == b'i') &&
                      (self.token_vec[left + 1].val[1] == b'F' || self.token_vec[left + 1].val[1] == b'f') {
                // IF is normally a function, except in Transact-SQL where it can be used as a standalone
                // control flow operator, e.g. ; IF 1=1 ... if found after a semicolon, convert from 'f' type to 'T' type
                self.token_vec[left + 1].token_type = TokenType::Tsql;
                continue;
            
            // FOLD: (bareword|variable) + leftparens -> function (for specific functions) - from apply_two_token_fold
            } else if (self.token_vec[left].token_type == TokenType::Bareword ||
                       self.token_vec[left].token_type == TokenType::Variable) &&
                      self.token_vec[left + 1].token_type == TokenType::LeftParenthesis &&
                      {
                          let val = self.token_vec[left].value_as_str();
                          // TSQL functions but common enough to be column names
                          self.cstrcasecmp("USER_ID", val) == 0 ||
                          self.cstrcasecmp("USER_NAME", val) == 0 ||
                          // Function in MYSQL  
                          self.cstrcasecmp("DATABASE", val) == 0 ||
                          self.cstrcasecmp("PASSWORD", val) == 0 ||
                          self.cstrcasecmp("USER", val) == 0 ||
                          // Mysql words that act as a variable and are a function
                          // TSQL current_users is fake-variable
                          self.cstrcasecmp("CURRENT_USER", val) == 0 ||
                          self.cstrcasecmp("CURRENT_DATE", val) == 0 ||
                          self.cstrcasecmp("CURRENT_TIME", val) == 0 ||
                          self.cstrcasecmp("CURRENT_TIMESTAMP", val) == 0 ||
                          self.cstrcasecmp("LOCALTIME", val) == 0 ||
                          self.cstrcasecmp("LOCALTIMESTAMP", val) == 0
                      } {
                // pos is the same, other conversions need to go here... for instance
                // password CAN be a function, coalesce CAN be a function
                self.token_vec[left].token_type = TokenType::Function;
                continue;
            
            // FOLD: keyword IN/NOT_IN + leftparens -> operator, else -> bareword - from apply_two_token_fold
            } else if self.token_vec[left].token_type == TokenType::Keyword &&
                      {
                          let val = self.token_vec[left].value_as_str();
                          self.cstrcasecmp("IN", val) == 0 || self.cstrcasecmp("NOT IN", val) == 0
                      } {
                if self.token_vec[left + 1].token_type == TokenType::LeftParenthesis {
                    // got .... IN ( ... (or 'NOT IN') - it's an operator
                    self.token_vec[left].token_type = TokenType::Operator;
                } else {
                    // it's a nothing
                    self.token_vec[left].token_type = TokenType::Bareword;
                }
                // "IN" can be used as "IN BOOLEAN MODE" for mysql in which case merging of words can be done later
                // otherwise it acts as an equality operator __ IN (values..)
                // here we got "IN" "(" so it's an operator.
                // also back track to handle "NOT IN"
                // might need to do the same with like
                // two use cases "foo" LIKE "BAR" (normal operator)
                // "foo" = LIKE(1,2)
                continue;
            
            // FOLD: operator LIKE/NOT_LIKE + leftparens -> function - from apply_two_token_fold
            // NOTE: This rule falls through in C - no continue!
            } else if self.token_vec[left].token_type == TokenType::Operator &&
                      {
                          let val = self.token_vec[left].value_as_str();
                          self.cstrcasecmp("LIKE", val) == 0 || self.cstrcasecmp("NOT LIKE", val) == 0
                      } {
                if self.token_vec[left + 1].token_type == TokenType::LeftParenthesis {
                    // SELECT LIKE(...  - it's a function
                    self.token_vec[left].token_type = TokenType::Function;
                }
                // NO continue here - falls through to next rule like C does
            
            // FOLD: sqltype + X -> X (remove sqltype) - from apply_two_token_fold
            } else if self.token_vec[left].token_type == TokenType::SqlType &&
                      (self.token_vec[left + 1].token_type == TokenType::Bareword ||
                       self.token_vec[left + 1].token_type == TokenType::Number ||
                       self.token_vec[left + 1].token_type == TokenType::SqlType ||
                       self.token_vec[left + 1].token_type == TokenType::LeftParenthesis ||
                       self.token_vec[left + 1].token_type == TokenType::Function ||
                       self.token_vec[left + 1].token_type == TokenType::Variable ||
                       self.token_vec[left + 1].token_type == TokenType::String) {
                self.token_vec[left] = self.token_vec[left + 1].clone();
                pos -= 1;
                self.stats_folds += 1;
                left = 0;
                continue;
            
            // FOLD: collate + bareword -> handle collation types - from apply_two_token_fold
            // NOTE: This rule falls through in C - no continue!
            } else if self.token_vec[left].token_type == TokenType::Collate &&
                      self.token_vec[left + 1].token_type == TokenType::Bareword {
                // there are too many collation types.. so if the bareword has a "_" then it's TYPE_SQLTYPE
                let val = self.token_vec[left + 1].value_as_str();
                if val.contains('_') {
                    self.token_vec[left + 1].token_type = TokenType::SqlType;
                    left = 0;
                }
                // NO continue here - falls through like C does
            
            // FOLD: backslash + arithmetic_op -> number, else copy - from apply_two_token_fold
            } else if self.token_vec[left].token_type == TokenType::Backslash {
                if self.is_arithmetic_op(&self.token_vec[left + 1]) {
                    // very weird case in TSQL where '\%1' is parsed as '0 % 1', etc
                    self.token_vec[left].token_type = TokenType::Number;
                } else {
                    // just ignore it.. Again T-SQL seems to parse \1 as "1"
                    self.token_vec[left] = self.token_vec[left + 1].clone();
                    pos -= 1;
                    self.stats_folds += 1;
                }
                left = 0;
                continue;
            
            // FOLD: leftparens + leftparens -> leftparens - from apply_two_token_fold
            } else if self.token_vec[left].token_type == TokenType::LeftParenthesis &&
                      self.token_vec[left + 1].token_type == TokenType::LeftParenthesis {
                pos -= 1;
                left = 0;
                self.stats_folds += 1;
                continue;
            
            // FOLD: rightparens + rightparens -> rightparens - from apply_two_token_fold
            } else if self.token_vec[left].token_type == TokenType::RightParenthesis &&
                      self.token_vec[left + 1].token_type == TokenType::RightParenthesis {
                pos -= 1;
                left = 0;
                self.stats_folds += 1;
                continue;
            
            // FOLD: leftbrace + bareword -> special handling - from apply_two_token_fold
            } else if self.token_vec[left].token_type == TokenType::LeftBrace &&
                      self.token_vec[left + 1].token_type == TokenType::Bareword {
                // MySQL Degenerate case -- 
                // select { ``.``.id };  -- valid !!!
                // select { ``.``.``.id };  -- invalid
                // select ``.``.id; -- invalid
                // select { ``.id }; -- invalid
                // so it appears {``.``.id} is a magic case
                // I suspect this is "current database, current table, field id"
                // The folding code can't look at more than 3 tokens, and I don't want to make two passes.
                // Since "{ ``" so rare, we are just going to blacklist it.
                // Highly likely this will need revisiting!
                if self.token_vec[left + 1].len == 0 {
                    self.token_vec[left + 1].token_type = TokenType::Evil;
                    // Copy tokens before early return
                    self.tokens.clear();
                    for i in 0..(left + 2) {
                        self.tokens.push(self.token_vec[i].clone());
                    }
                    return left + 2;
                }
                // weird ODBC / MYSQL {foo expr} --> expr
                // but for this rule we just strip away the "{ foo" part
                left = 0;
                pos -= 2;
                self.stats_folds += 2;
                continue;
            
            // FOLD: X + rightbrace -> X - from apply_two_token_fold
            } else if self.token_vec[left + 1].token_type == TokenType::RightBrace {
                pos -= 1;
                left = 0;
                self.stats_folds += 1;
                continue;
            }
            
            // all cases of handling 2 tokens is done and nothing matched. Get one more token
            self.read_tokens(&mut tokenizer, &mut last_comment, &mut more, &mut pos, left, 3);
            
            // Do we have three tokens? If not then we are done
            if pos - left < 3 {
                left = pos;
                continue;
            }
            
            /* ALL 3-TOKEN FOLDING RULES: see `three.rs` */
            if self.fold_three_tokens(&mut left, &mut pos) {
                continue;
            }
            
            // no folding -- assume left-most token is good, now use the existing 2 tokens -- do not get another
            left += 1;
        }
        
        
        // Sometimes we grab a 6th token to help determine the type of token 5
        if left > LIBINJECTION_SQLI_MAX_TOKENS {
            left = LIBINJECTION_SQLI_MAX_TOKENS;
        }
        
        // Check for magic PHP backquote comment BEFORE copying tokens
        // This matches C implementation behavior in libinjection_sqli.c lines 1917-1922
        // If:
        // * last token is of type "bareword"
        // * And is quoted in a backtick
        // * And isn't closed
        // * And it's empty?
        // Then convert it to comment
        if left > 2 {
            let last_token = &mut self.token_vec[left - 1];
            if last_token.token_type == TokenType::Bareword &&
               last_token.str_open == b'`' &&
               last_token.len == 0 &&
               last_token.str_close == 0 {
                last_token.token_type = TokenType::Comment;
            }
        }
        
        // Copy final tokens to the tokens vector for fingerprinting
        // Use left instead of pos to match C implementation exactly
        self.tokens.clear();
        for i in 0..left.min(LIBINJECTION_SQLI_MAX_TOKENS) {
            if self.token_vec[i].token_type != TokenType::None {
                self.tokens.push(self.token_vec[i].clone());
            }
        }
        
        // Copy tokenizer statistics
        self.stats_comment_c = tokenizer.stats_comment_c;
        self.stats_comment_ddw = tokenizer.stats_comment_ddw;
        self.stats_comment_ddx = tokenizer.stats_comment_ddx;
        self.stats_comment_hash = tokenizer.stats_comment_hash;
        
        // Add last comment back to token array if there's space (matches C lines 1873-1877)
        if left < LIBINJECTION_SQLI_MAX_TOKENS && last_comment.token_type == TokenType::Comment {
            self.tokens.push(last_comment);
            left += 1; // C line 1876: left += 1;
        }
        
        left
    }
    
    /// Reads tokens into `token_vec` at `pos` until it holds `count` from `left`
    /// (C's "get up to two tokens" and "get one more token" loops): a comment
    /// is kept aside in `last_comment`, and `more` turns false at the end of
    /// the input.
    #[inline]
    fn read_tokens(
        &mut self,
        tokenizer: &mut SqliTokenizer<'_>,
        last_comment: &mut Token,
        more: &mut bool,
        pos: &mut usize,
        left: usize,
        count: usize,
    ) {
        while *more && *pos <= LIBINJECTION_SQLI_MAX_TOKENS && *pos - left < count {
            if let Some(token) = tokenizer.next_token() {
                // Count all tokens processed for stats_tokens
                self.stats_tokens += 1;
                
                if token.token_type == TokenType::Comment {
                    *last_comment = token;
                } else {
                    last_comment.token_type = TokenType::None;
                    self.token_vec[*pos] = token;
                    *pos += 1;
                }
            } else {
                *more = false;
            }
        }
    }
    
    fn is_unary_op(&self, token: &Token) -> bool {
        if token.token_type != TokenType::Operator {
            return false;
        }
        
        let val = token.value_as_str();
        match val.len() {
            1 => matches!(val.chars().next(), Some('+' | '-' | '!' | '~')),
            2 => val == "!!",
            3 => self.cstrcasecmp("NOT", val) == 0,
            _ => false,
        }
    }
    
    fn is_arithmetic_op(&self, token: &Token) -> bool {
        if token.token_type != TokenType::Operator || token.len != 1 {
            return false;
        }
        
        let ch = token.val[0] as char;
        matches!(ch, '*' | '/' | '-' | '+' | '%')
    }
    
    /// Case-insensitive string comparison that matches C's cstrcasecmp exactly
    fn cstrcasecmp(&self, a: &str, b: &str) -> i32 {
        let a_bytes = a.as_bytes();
        let b_bytes = b.as_bytes();
        let n = a_bytes.len();
        
        if n != b_bytes.len() {
            return if a_bytes.len() < b_bytes.len() { -1 } else { 1 };
        }
        
        for i in 0..n {
            let mut cb = b_bytes[i];
            if cb >= b'a' && cb <= b'z' {
                cb -= 0x20;
            }
            if a_bytes[i] != cb {
                return a_bytes[i] as i32 - cb as i32;
            } else if a_bytes[i] == 0 {
                return -1;
            }
        }
        
        if n == 0 { 0 } else { 0 }
    }
}
